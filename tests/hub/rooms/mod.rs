//! The hub's sessions and rooms over real sockets on 127.0.0.1: hello, join, the
//! snapshot and member events, leave, roles, kick, close, the grace period; the
//! publishing rules (roles, membership, the sender field), the capacity limits,
//! the relay (byte for byte, no echo), cached and requested keyframes, audio
//! acknowledgements and duplicate suppression, and the error counters.

use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{
    CloseRoom, Flags, Join, Kick, Kind, Leave, LeaveReason, Message, NeedsKeyframe, Role,
    RoleChanged,
};

const T: Duration = Duration::from_secs(5);

#[test]
fn join_snapshot_member_events_and_relay() {
    let hub = TestHub::dev();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = a.join("studio-1", Role::Owner).unwrap();
    let hb = b.join("studio-1", Role::Member).unwrap();
    assert_eq!(h, hb);
    let joined = a
        .recv_until(T, |g| g.kind() == Kind::MemberJoined)
        .expect("member joined");
    joined.with(|m| match m {
        Message::MemberJoined(j) => assert_eq!(j.member.member, b.member),
        _ => unreachable!(),
    });
    // Pose from b reaches a byte for byte.
    let mut s = PoseStream::new(1);
    let sent = s.next(h, b.member).to_vec();
    b.send_bytes(&sent);
    let got = a
        .recv_until(T, |g| g.kind() == Kind::Pose)
        .expect("pose relayed");
    assert_eq!(got.bytes, sent);
    drop(b);
    let left = a
        .recv_until(T, |g| g.kind() == Kind::MemberLeft)
        .expect("member left");
    assert_eq!(left.header().room, h);
    hub.stop();
}

// ---- helpers -------------------------------------------------------------------

// Error codes (PROTOCOL.md 6.3).
const BAD_MESSAGE: u16 = 1;
const FORBIDDEN: u16 = 6;
const ROOM_FULL: u16 = 7;
const HUB_FULL: u16 = 8;
const NO_SUCH_ROOM: u16 = 9;
const NOT_MEMBER: u16 = 10;
const NO_SUCH_MEMBER: u16 = 11;

/// Small tables: the tests run many hubs at once.
fn small(cfg: HubConfig) -> HubConfig {
    HubConfig {
        max_connections: 32,
        max_rooms: 16,
        ..cfg
    }
}

fn dev_hub() -> TestHub {
    TestHub::start(small(HubConfig::local_dev()))
}

fn secured_hub() -> TestHub {
    TestHub::start(small(secured()))
}

/// A session on a secured hub for `user`, granted every room with `role`.
fn user(hub: &TestHub, user: &str, role: Role) -> Client {
    Client::session(hub.addr, &token(user, &[("*", role, true)], 600))
}

/// The next message of `kind`, skipping others.
fn next(c: &mut Client, kind: Kind) -> Got {
    c.recv_until(T, |g| g.kind() == kind).unwrap_or_else(|| {
        panic!(
            "member {}: no {} within {T:?} (closed: {:?})",
            c.member,
            kind.name(),
            c.closed
        )
    })
}

/// The next pose or audio message, skipping control.
fn next_media(c: &mut Client) -> Got {
    c.recv_until(T, |g| g.kind().is_media()).unwrap_or_else(|| {
        panic!(
            "member {}: no media within {T:?} (closed: {:?})",
            c.member, c.closed
        )
    })
}

/// Waits for an error; checks its code and `about` byte, returns its (non-empty) reason.
fn expect_error(c: &mut Client, code: u16, about: Kind) -> String {
    let g = next(c, Kind::Error);
    let (got, got_about, reason) = g.with(|m| match m {
        Message::Error(e) => (e.code.0, e.about, e.reason.to_string()),
        _ => unreachable!(),
    });
    assert_eq!(
        (got, got_about),
        (code, about as u8),
        "error code/about (reason: {reason})"
    );
    assert!(!reason.is_empty(), "an error must say why");
    reason
}

struct Snapshot {
    handle: u16,
    name: String,
    your_role: Role,
    members: Vec<(u16, Role, String)>,
}

/// Joins and parses the snapshot (panics on an error).
fn join_snapshot(c: &mut Client, room: &str, role: Role) -> Snapshot {
    c.send(0, &Message::Join(Join { room, role }));
    let g = c
        .recv_until(T, |g| matches!(g.kind(), Kind::RoomSnapshot | Kind::Error))
        .unwrap_or_else(|| panic!("no answer to the join of {room}"));
    let header = g.header();
    assert_eq!(header.sender, 0, "the snapshot comes from the hub");
    g.with(|m| match m {
        Message::RoomSnapshot(s) => Snapshot {
            handle: header.room,
            name: s.name.to_string(),
            your_role: s.your_role,
            members: s
                .members
                .iter()
                .map(|m| (m.member, m.role, m.user.to_string()))
                .collect(),
        },
        other => panic!("join of {room} refused: {other:?}"),
    })
}

fn member_left(g: &Got) -> (u16, u16, LeaveReason) {
    let room = g.header().room;
    g.with(|m| match m {
        Message::MemberLeft(l) => (room, l.member, l.reason),
        other => panic!("not a member_left: {other:?}"),
    })
}

fn role_changed(g: &Got) -> (u16, u16, Role) {
    let room = g.header().room;
    g.with(|m| match m {
        Message::RoleChanged(r) => (room, r.member, r.role),
        other => panic!("not a role_changed: {other:?}"),
    })
}

fn member_joined(g: &Got) -> (u16, u16, Role, String) {
    let room = g.header().room;
    g.with(|m| match m {
        Message::MemberJoined(j) => (
            room,
            j.member.member,
            j.member.role,
            j.member.user.to_string(),
        ),
        other => panic!("not a member_joined: {other:?}"),
    })
}

fn errors(hub: &TestHub, kind: &str) -> f64 {
    hub.metric(&format!("poselink_errors_total{{kind=\"{kind}\"}}"))
}

fn is_keyframe(bytes: &[u8]) -> bool {
    let h = poselink::proto::Packet::new_checked(bytes)
        .unwrap()
        .header();
    h.kind == Kind::Pose && h.flags.contains(Flags::KEYFRAME)
}

/// Publishes the next pose of `s` from `c` into room `h`; returns its bytes.
fn publish(c: &mut Client, s: &mut PoseStream, h: u16) -> Vec<u8> {
    let bytes = s.next(h, c.member).to_vec();
    c.send_bytes(&bytes);
    bytes
}

/// Three sessions in "studio-1" on a secured hub: ana (owner), bo (member), cy
/// (viewer, though its token would grant member), every join event consumed.
/// Returns them and the room handle.
fn studio(hub: &TestHub) -> (Client, Client, Client, u16) {
    let mut ana = user(hub, "ana", Role::Owner);
    let mut bo = user(hub, "bo", Role::Member);
    let mut cy = user(hub, "cy", Role::Member);
    let h = join_snapshot(&mut ana, "studio-1", Role::Owner).handle;
    assert_eq!(join_snapshot(&mut bo, "studio-1", Role::Member).handle, h);
    next(&mut ana, Kind::MemberJoined);
    assert_eq!(join_snapshot(&mut cy, "studio-1", Role::Viewer).handle, h);
    next(&mut ana, Kind::MemberJoined);
    next(&mut bo, Kind::MemberJoined);
    (ana, bo, cy, h)
}

mod limits;
mod membership;
mod relay;
