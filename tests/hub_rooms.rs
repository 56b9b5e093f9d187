//! The hub's sessions and rooms over real sockets on 127.0.0.1: hello, join, the
//! snapshot and member events, leave, roles, kick, close, the grace period; the
//! publishing rules (roles, membership, the sender field), the capacity limits,
//! the relay (byte for byte, no echo), cached and requested keyframes, audio
//! acknowledgements and duplicate suppression, and the error counters.
#![cfg(feature = "std")]

mod common;

use std::time::{Duration, Instant};

use common::*;
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

// ---- membership ----------------------------------------------------------------

#[test]
fn snapshot_lists_members_with_roles_and_users() {
    let hub = secured_hub();
    let mut ana = user(&hub, "ana", Role::Owner);
    let mut bo = user(&hub, "bo", Role::Member);
    let mut cy = user(&hub, "cy", Role::Viewer);
    let sa = join_snapshot(&mut ana, "studio-1", Role::Owner);
    assert_ne!(sa.handle, 0);
    assert_eq!((sa.name.as_str(), sa.your_role), ("studio-1", Role::Owner));
    assert_eq!(sa.members, [(ana.member, Role::Owner, "ana".to_string())]);
    let sb = join_snapshot(&mut bo, "studio-1", Role::Member);
    assert_eq!(sb.handle, sa.handle);
    assert_eq!(sb.your_role, Role::Member);
    assert_eq!(
        sb.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Member, "bo".to_string())
        ]
    );
    let sc = join_snapshot(&mut cy, "studio-1", Role::Viewer);
    assert_eq!((sc.handle, sc.your_role), (sa.handle, Role::Viewer));
    // In join order, the joiner included.
    assert_eq!(
        sc.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Member, "bo".to_string()),
            (cy.member, Role::Viewer, "cy".to_string()),
        ]
    );
    // The others heard of each join, in order, with role and user.
    let h = sa.handle;
    assert_eq!(
        member_joined(&next(&mut ana, Kind::MemberJoined)),
        (h, bo.member, Role::Member, "bo".into())
    );
    assert_eq!(
        member_joined(&next(&mut ana, Kind::MemberJoined)),
        (h, cy.member, Role::Viewer, "cy".into())
    );
    assert_eq!(
        member_joined(&next(&mut bo, Kind::MemberJoined)),
        (h, cy.member, Role::Viewer, "cy".into())
    );
    // A second room gets another handle.
    let other = join_snapshot(&mut bo, "studio-2", Role::Member);
    assert_ne!(other.handle, h);
    assert_eq!(other.members, [(bo.member, Role::Member, "bo".to_string())]);
    assert_eq!(hub.metric("poselink_rooms"), 2.0);
}

#[test]
fn leave_tells_everyone_and_ends_the_membership() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    bo.send(0, &Message::Leave(Leave { room: "studio-1" }));
    let bm = bo.member;
    for c in [&mut ana, &mut cy, &mut bo] {
        let g = next(c, Kind::MemberLeft);
        assert_eq!(
            member_left(&g),
            (h, bm, LeaveReason::Left),
            "seen by member {}",
            c.member
        );
    }
    // bo is out: its pose is refused, a second leave too, and nothing reaches cy.
    let mut s = PoseStream::new(2);
    publish(&mut bo, &mut s, h);
    let r = expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    assert!(r.contains("member"), "{r}");
    bo.send(0, &Message::Leave(Leave { room: "studio-1" }));
    expect_error(&mut bo, NOT_MEMBER, Kind::Leave);
    let mut sa = PoseStream::new(3);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(
        next_media(&mut cy).bytes,
        marker,
        "cy got something from bo"
    );
    // A later joiner's snapshot no longer lists bo.
    let mut dee = user(&hub, "dee", Role::Viewer);
    let sd = join_snapshot(&mut dee, "studio-1", Role::Viewer);
    let ids: Vec<u16> = sd.members.iter().map(|m| m.0).collect();
    assert_eq!(ids, [ana.member, cy.member, dee.member]);
    assert_eq!(errors(&hub, "not_member"), 2.0);
}

#[test]
fn a_disconnect_is_member_left_disconnected_in_every_room() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    let h2 = join_snapshot(&mut a, "r2", Role::Owner).handle;
    join_snapshot(&mut b, "r1", Role::Member);
    join_snapshot(&mut b, "r2", Role::Member);
    let bm = b.member;
    drop(b);
    let mut seen = vec![
        member_left(&next(&mut a, Kind::MemberLeft)),
        member_left(&next(&mut a, Kind::MemberLeft)),
    ];
    seen.sort_by_key(|x| x.0);
    let mut want = vec![
        (h1, bm, LeaveReason::Disconnected),
        (h2, bm, LeaveReason::Disconnected),
    ];
    want.sort_by_key(|x| x.0);
    assert_eq!(seen, want);
    assert_eq!(hub.metric("poselink_sessions"), 1.0);
}

#[test]
fn rejoining_changes_the_role_and_tells_the_others() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    let again = join_snapshot(&mut bo, "studio-1", Role::Viewer);
    assert_eq!((again.handle, again.your_role), (h, Role::Viewer));
    assert_eq!(
        again.members.len(),
        3,
        "a rejoin is not a second membership"
    );
    assert!(
        again
            .members
            .contains(&(bo.member, Role::Viewer, "bo".to_string()))
    );
    for c in [&mut ana, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, bo.member, Role::Viewer)
        );
    }
    let mut s = PoseStream::new(4);
    publish(&mut bo, &mut s, h);
    expect_error(&mut bo, FORBIDDEN, Kind::Pose);
}

#[test]
fn a_silent_member_times_out() {
    let hub = TestHub::start(small(HubConfig {
        heartbeat_ms: 100,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r", Role::Owner).handle;
    join_snapshot(&mut b, "r", Role::Member);
    next(&mut a, Kind::MemberJoined);
    // b stops reading, so it answers no ping; a keeps reading (and answering).
    let bm = b.member;
    let g = a
        .recv_until(Duration::from_secs(3), |g| g.kind() == Kind::MemberLeft)
        .expect("b times out");
    assert_eq!(
        member_left(&g),
        (h, bm, LeaveReason::TimedOut),
        "PROTOCOL.md 6.2: a heartbeat timeout is TimedOut"
    );
    assert!(a.closed.is_none(), "a answered its pings");
    let (code, reason) = b
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error")
        .error()
        .unwrap();
    assert_eq!(code, 15, "GOING_AWAY: {reason}");
    assert_eq!(b.expect_close(T).0, 1001);
    assert_eq!(errors(&hub, "heartbeat_timeout"), 1.0);
}

// ---- roles and moderation ------------------------------------------------------

#[test]
fn owner_changes_roles_at_run_time() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    // Demote bo to viewer: everyone (bo and the owner too) hears it.
    let (bm, cm) = (bo.member, cy.member);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: bm,
            role: Role::Viewer,
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, bm, Role::Viewer)
        );
    }
    let mut sb = PoseStream::new(5);
    publish(&mut bo, &mut sb, h);
    let r = expect_error(&mut bo, FORBIDDEN, Kind::Pose);
    assert!(r.contains("viewer"), "{r}");
    bo.send_bytes(&audio_message(h, bo.member, 1));
    expect_error(&mut bo, FORBIDDEN, Kind::Audio);
    // Nothing of bo's reached cy: the next media cy gets is ana's.
    let mut sa = PoseStream::new(6);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(next_media(&mut cy).bytes, marker);
    // bo, a viewer, still receives.
    assert_eq!(next_media(&mut bo).bytes, marker);
    // Promote cy to member: now it may publish, and bo receives it.
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: cm,
            role: Role::Member,
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        assert_eq!(
            role_changed(&next(c, Kind::RoleChanged)),
            (h, cm, Role::Member)
        );
    }
    let mut sc = PoseStream::new(7);
    let from_cy = publish(&mut cy, &mut sc, h);
    assert_eq!(next_media(&mut bo).bytes, from_cy);
    assert_eq!(next_media(&mut ana).bytes, from_cy);
    // A later joiner's snapshot shows the new roles.
    let mut dee = user(&hub, "dee", Role::Viewer);
    let sd = join_snapshot(&mut dee, "studio-1", Role::Viewer);
    assert_eq!(
        sd.members,
        [
            (ana.member, Role::Owner, "ana".to_string()),
            (bo.member, Role::Viewer, "bo".to_string()),
            (cy.member, Role::Member, "cy".to_string()),
            (dee.member, Role::Viewer, "dee".to_string()),
        ]
    );
    assert_eq!(errors(&hub, "forbidden"), 2.0);
}

#[test]
fn only_the_owner_moderates() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    for c in [&mut bo, &mut cy] {
        let target = ana.member;
        c.send(
            h,
            &Message::Kick(Kick {
                member: target,
                reason: "coup",
            }),
        );
        let r = expect_error(c, FORBIDDEN, Kind::Kick);
        assert!(r.contains("owner"), "{r}");
        let me = c.member;
        c.send(
            h,
            &Message::RoleChanged(RoleChanged {
                member: me,
                role: Role::Owner,
            }),
        );
        let r = expect_error(c, FORBIDDEN, Kind::RoleChanged);
        assert!(r.contains("owner"), "{r}");
        c.send(h, &Message::CloseRoom(CloseRoom { reason: "mine now" }));
        let r = expect_error(c, FORBIDDEN, Kind::CloseRoom);
        assert!(r.contains("owner"), "{r}");
    }
    assert_eq!(errors(&hub, "forbidden"), 6.0);
    // Someone in no room at all is not a member.
    let mut eve = user(&hub, "eve", Role::Owner);
    eve.send(
        h,
        &Message::Kick(Kick {
            member: bo.member,
            reason: "",
        }),
    );
    expect_error(&mut eve, NOT_MEMBER, Kind::Kick);
    eve.send(h, &Message::CloseRoom(CloseRoom { reason: "" }));
    expect_error(&mut eve, NOT_MEMBER, Kind::CloseRoom);
    // The owner naming nobody.
    ana.send(
        h,
        &Message::Kick(Kick {
            member: 999,
            reason: "",
        }),
    );
    expect_error(&mut ana, NO_SUCH_MEMBER, Kind::Kick);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: eve.member,
            role: Role::Viewer,
        }),
    );
    expect_error(&mut ana, NO_SUCH_MEMBER, Kind::RoleChanged);
    // Nothing changed: nobody left, no role changed, the room is still there.
    let mut sa = PoseStream::new(8);
    let marker = publish(&mut ana, &mut sa, h);
    for c in [&mut bo, &mut cy] {
        let g = c
            .recv_until(T, |g| g.kind() != Kind::Error)
            .expect("the marker");
        assert_eq!(g.kind(), Kind::Pose, "unexpected {:?}", g.kind());
        assert_eq!(g.bytes, marker);
    }
    let mut sb = PoseStream::new(9);
    let from_bo = publish(&mut bo, &mut sb, h);
    assert_eq!(next_media(&mut cy).bytes, from_bo, "bo is still a member");
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
}

#[test]
fn owner_kicks_a_member() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    ana.send(
        h,
        &Message::Kick(Kick {
            member: bo.member,
            reason: "be nice",
        }),
    );
    let k = next(&mut bo, Kind::Kick);
    assert_eq!(k.header().room, h);
    let bm = bo.member;
    k.with(|m| match m {
        Message::Kick(k) => assert_eq!((k.member, k.reason), (bm, "be nice")),
        _ => unreachable!(),
    });
    for c in [&mut ana, &mut cy] {
        assert_eq!(
            member_left(&next(c, Kind::MemberLeft)),
            (h, bm, LeaveReason::Kicked)
        );
    }
    // The kicked one is out: its pose is NOT_MEMBER and reaches nobody.
    let mut sb = PoseStream::new(10);
    publish(&mut bo, &mut sb, h);
    let r = expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    assert!(r.contains("join"), "{r}");
    let mut sa = PoseStream::new(11);
    let marker = publish(&mut ana, &mut sa, h);
    assert_eq!(next_media(&mut cy).bytes, marker);
    // Nor does it receive the room's media any more.
    let mut sc = PoseStream::new(12);
    ana.send(
        h,
        &Message::RoleChanged(RoleChanged {
            member: cy.member,
            role: Role::Member,
        }),
    );
    next(&mut cy, Kind::RoleChanged);
    publish(&mut cy, &mut sc, h);
    next_media(&mut ana);
    assert!(
        bo.recv_until(Duration::from_millis(150), |g| g.kind().is_media())
            .is_none(),
        "a kicked member still receives the room's media"
    );
    assert_eq!(errors(&hub, "not_member"), 1.0);
}

#[test]
fn owner_closes_the_room() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
    ana.send(
        h,
        &Message::CloseRoom(CloseRoom {
            reason: "show is over",
        }),
    );
    for c in [&mut ana, &mut bo, &mut cy] {
        let g = next(c, Kind::CloseRoom);
        assert_eq!(g.header().room, h);
        g.with(|m| match m {
            Message::CloseRoom(cr) => assert_eq!(cr.reason, "show is over"),
            _ => unreachable!(),
        });
    }
    // Gone at once, no grace period.
    assert_eq!(hub.metric("poselink_rooms"), 0.0);
    let mut sb = PoseStream::new(13);
    publish(&mut bo, &mut sb, h);
    expect_error(&mut bo, NOT_MEMBER, Kind::Pose);
    ana.send(h, &Message::CloseRoom(CloseRoom { reason: "again" }));
    expect_error(&mut ana, NOT_MEMBER, Kind::CloseRoom);
    // The name is free: joining creates a fresh room with one member.
    let s = join_snapshot(&mut cy, "studio-1", Role::Viewer);
    assert_eq!(s.members, [(cy.member, Role::Viewer, "cy".to_string())]);
}

// ---- publishing rules ----------------------------------------------------------

#[test]
fn viewers_may_not_publish() {
    let hub = secured_hub();
    let (mut ana, mut bo, mut cy, h) = studio(&hub);
    let mut sc = PoseStream::new(14);
    publish(&mut cy, &mut sc, h);
    let r = expect_error(&mut cy, FORBIDDEN, Kind::Pose);
    assert!(r.contains("viewer"), "{r}");
    cy.send_bytes(&audio_message(h, cy.member, 1));
    expect_error(&mut cy, FORBIDDEN, Kind::Audio);
    // Nothing relayed: the next media the others get is bo's.
    let mut sb = PoseStream::new(15);
    let marker = publish(&mut bo, &mut sb, h);
    assert_eq!(next_media(&mut ana).bytes, marker);
    assert_eq!(next_media(&mut cy).bytes, marker);
    assert_eq!(errors(&hub, "forbidden"), 2.0);
    assert_eq!(hub.metric("poselink_messages_in_total{kind=\"pose\"}"), 2.0);
}

#[test]
fn publishing_into_a_room_one_is_not_in_is_not_member() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    let h2 = join_snapshot(&mut b, "r2", Role::Owner).handle;
    let mut s = PoseStream::new(16);
    for room in [h1, 999, 0] {
        publish(&mut b, &mut s, room);
        let r = expect_error(&mut b, NOT_MEMBER, Kind::Pose);
        assert!(r.contains("join"), "{r}");
    }
    b.send_bytes(&audio_message(h1, b.member, 1));
    expect_error(&mut b, NOT_MEMBER, Kind::Audio);
    assert!(
        a.recv_until(Duration::from_millis(150), |g| g.kind().is_media())
            .is_none(),
        "a non-member's media was relayed"
    );
    // Into its own room it is fine (and alone there, nobody gets it).
    publish(&mut b, &mut s, h2);
    b.send(0, &Message::Ping(poselink::proto::Ping { t0_us: 1 }));
    let g = b
        .recv_until(T, |g| matches!(g.kind(), Kind::Pong | Kind::Error))
        .unwrap();
    assert_eq!(g.kind(), Kind::Pong, "{:?}", g.error());
    assert_eq!(errors(&hub, "not_member"), 4.0);
}

#[test]
fn a_sender_field_that_is_not_ones_own_is_bad_message() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r1", Role::Owner).handle;
    join_snapshot(&mut b, "r1", Role::Member);
    let mut s = PoseStream::new(17);
    // a claims to be b, and then the hub.
    for sender in [b.member, 0] {
        a.send_bytes(s.next(h, sender));
        let r = expect_error(&mut a, BAD_MESSAGE, Kind::Pose);
        assert!(r.contains("sender"), "{r}");
    }
    a.send_bytes(&audio_message(h, b.member, 1));
    expect_error(&mut a, BAD_MESSAGE, Kind::Audio);
    let marker = publish(&mut a, &mut s, h);
    assert_eq!(
        next_media(&mut b).bytes,
        marker,
        "a forged message was relayed"
    );
    assert_eq!(errors(&hub, "bad_message"), 3.0);
}

// ---- limits --------------------------------------------------------------------

#[test]
fn max_members_refuses_with_room_full() {
    let hub = TestHub::start(small(HubConfig {
        max_members: 2,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "small", Role::Owner).handle;
    join_snapshot(&mut b, "small", Role::Member);
    c.send(
        0,
        &Message::Join(Join {
            room: "small",
            role: Role::Member,
        }),
    );
    let r = expect_error(&mut c, ROOM_FULL, Kind::Join);
    assert!(r.contains("full"), "{r}");
    assert_eq!(errors(&hub, "room_full"), 1.0);
    // a heard of b only.
    assert_eq!(member_joined(&next(&mut a, Kind::MemberJoined)).1, b.member);
    // A refused joiner is not a member.
    let mut s = PoseStream::new(18);
    publish(&mut c, &mut s, h);
    expect_error(&mut c, NOT_MEMBER, Kind::Pose);
    // Once b leaves there is room.
    b.send(0, &Message::Leave(Leave { room: "small" }));
    next(&mut a, Kind::MemberLeft);
    assert_eq!(join_snapshot(&mut c, "small", Role::Member).handle, h);
    assert_eq!(member_joined(&next(&mut a, Kind::MemberJoined)).1, c.member);
}

#[test]
fn max_rooms_refuses_with_hub_full_and_empty_rooms_count() {
    let hub = TestHub::start(HubConfig {
        max_rooms: 1,
        ..small(HubConfig::local_dev())
    });
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    join_snapshot(&mut a, "r1", Role::Owner);
    b.send(
        0,
        &Message::Join(Join {
            room: "r2",
            role: Role::Owner,
        }),
    );
    let r = expect_error(&mut b, HUB_FULL, Kind::Join);
    assert!(r.contains("rooms"), "{r}");
    // The existing room can still be joined.
    join_snapshot(&mut b, "r1", Role::Member);
    // An empty room in its grace period still counts.
    for c in [&mut a, &mut b] {
        c.send(0, &Message::Leave(Leave { room: "r1" }));
    }
    next(&mut b, Kind::MemberLeft);
    next(&mut b, Kind::MemberLeft);
    b.send(
        0,
        &Message::Join(Join {
            room: "r2",
            role: Role::Owner,
        }),
    );
    expect_error(&mut b, HUB_FULL, Kind::Join);
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
    // Closing frees it at once.
    let h = join_snapshot(&mut a, "r1", Role::Owner).handle;
    a.send(h, &Message::CloseRoom(CloseRoom { reason: "" }));
    next(&mut a, Kind::CloseRoom);
    assert_ne!(join_snapshot(&mut b, "r2", Role::Owner).handle, 0);
    assert_eq!(errors(&hub, "hub_full"), 2.0);
}

#[test]
fn max_rooms_per_connection() {
    let hub = TestHub::start(small(HubConfig {
        max_rooms_per_connection: 2,
        ..HubConfig::local_dev()
    }));
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h1 = join_snapshot(&mut a, "r1", Role::Owner).handle;
    join_snapshot(&mut a, "r2", Role::Owner);
    a.send(
        0,
        &Message::Join(Join {
            room: "r3",
            role: Role::Owner,
        }),
    );
    let r = expect_error(&mut a, HUB_FULL, Kind::Join);
    assert!(r.contains("rooms"), "{r}");
    // A room one is in may be joined again (a role change), another connection is
    // not limited by a's rooms.
    assert_eq!(join_snapshot(&mut a, "r1", Role::Member).handle, h1);
    join_snapshot(&mut b, "r3", Role::Owner);
    join_snapshot(&mut b, "r1", Role::Viewer);
    // After leaving one, a may join another.
    a.send(0, &Message::Leave(Leave { room: "r2" }));
    next(&mut a, Kind::MemberLeft);
    join_snapshot(&mut a, "r3", Role::Member);
    assert_eq!(errors(&hub, "hub_full"), 1.0);
}

// ---- grace period --------------------------------------------------------------

#[test]
fn an_empty_room_lives_through_its_grace_period_then_goes() {
    let hub = TestHub::start(small(HubConfig {
        room_grace_ms: 300,
        ..secured()
    }));
    let mut owner = Client::session(
        hub.addr,
        &token("coach", &[("gym", Role::Owner, true)], 600),
    );
    let guest_token = token("board", &[("gym", Role::Member, false)], 600);
    let mut guest = Client::session(hub.addr, &guest_token);
    let h = join_snapshot(&mut owner, "gym", Role::Owner).handle;
    owner.send(0, &Message::Leave(Leave { room: "gym" }));
    assert_eq!(
        member_left(&next(&mut owner, Kind::MemberLeft)),
        (h, owner.member, LeaveReason::Left)
    );
    let left_at = Instant::now();
    assert_eq!(
        hub.metric("poselink_rooms"),
        1.0,
        "an empty room is kept for its grace period"
    );
    // Within the grace period, a token that may not create gets the same room back.
    let back = join_snapshot(&mut guest, "gym", Role::Member);
    assert!(
        left_at.elapsed() < Duration::from_millis(300),
        "too slow to test the grace period"
    );
    assert_eq!(back.handle, h);
    assert_eq!(
        back.members,
        [(guest.member, Role::Member, "board".to_string())]
    );
    // The guest disconnects; the room expires about 300 ms later.
    drop(guest);
    let dropped_at = Instant::now();
    let deadline = dropped_at + Duration::from_secs(3);
    while hub.metric("poselink_rooms") != 0.0 {
        assert!(Instant::now() < deadline, "the empty room never expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    let expired_after = dropped_at.elapsed();
    assert!(
        expired_after >= Duration::from_millis(290),
        "expired after only {expired_after:?}"
    );
    assert_eq!(hub.metric("poselink_rooms_expired_total"), 1.0);
    let mut late = Client::session(hub.addr, &guest_token);
    late.send(
        0,
        &Message::Join(Join {
            room: "gym",
            role: Role::Member,
        }),
    );
    let r = expect_error(&mut late, NO_SUCH_ROOM, Kind::Join);
    assert!(r.contains("no such room"), "{r}");
    assert_eq!(errors(&hub, "no_such_room"), 1.0);
}

// ---- relay and keyframes -------------------------------------------------------

#[test]
fn pose_and_audio_reach_every_other_member_byte_for_byte() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "r", Role::Owner).handle;
    join_snapshot(&mut b, "r", Role::Member);
    join_snapshot(&mut c, "r", Role::Viewer);
    let mut s = PoseStream::new(19);
    let mut sent = Vec::new();
    for seq in 1..=5u32 {
        sent.push(publish(&mut a, &mut s, h));
        let audio = audio_message(h, a.member, seq);
        a.send_bytes(&audio);
        sent.push(audio);
    }
    assert!(
        is_keyframe(&sent[0]) && !is_keyframe(&sent[2]),
        "the stream starts with a keyframe, then deltas"
    );
    for r in [&mut b, &mut c] {
        let got: Vec<Vec<u8>> = (0..sent.len()).map(|_| next_media(r).bytes).collect();
        assert_eq!(
            got, sent,
            "member {} got other bytes or another order",
            r.member
        );
    }
    // The publisher gets none of its own media back: its next media is b's.
    let mut sb = PoseStream::new(20);
    let from_b = publish(&mut b, &mut sb, h);
    assert_eq!(next_media(&mut a).bytes, from_b);
    assert_eq!(next_media(&mut c).bytes, from_b);
    assert_eq!(hub.metric("poselink_delivered_total"), 22.0);

    // The performance monitor saw the same 22 deliveries: in /metrics as the
    // recent window, and in the JSON report of /report.
    assert!(hub.metric("poselink_window_msgs_out_per_s") > 0.0);
    assert!(hub.metric("poselink_window_latency_p99_ms") >= 0.0);
    let (status, body) = hub.http_get("/report");
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).expect("/report is JSON");
    assert_eq!(report["latency"]["count"], 22.0, "{report}");
    assert!(
        report["latency"]["p99"].as_f64().unwrap() >= 0.0,
        "{report}"
    );
    assert!(
        report["throughput"]["msgs_in_per_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert_eq!(report["reliability"]["drops"], 0.0, "{report}");
}

#[test]
fn a_late_joiner_gets_the_cached_keyframe_first() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "kf", Role::Owner).handle;
    join_snapshot(&mut b, "kf", Role::Member);
    let mut s = PoseStream::new(21);
    let frames: Vec<Vec<u8>> = (0..3).map(|_| publish(&mut a, &mut s, h)).collect();
    assert!(is_keyframe(&frames[0]));
    assert!(!is_keyframe(&frames[1]) && !is_keyframe(&frames[2]));
    for f in &frames {
        assert_eq!(&next_media(&mut b).bytes, f);
    }
    next(&mut a, Kind::MemberJoined);
    // c joins: right after its snapshot comes a's keyframe, before anything else.
    let mut c = Client::session(hub.addr, "");
    let snap = join_snapshot(&mut c, "kf", Role::Viewer);
    assert_eq!(snap.handle, h);
    let first = c.recv(T).expect("a message after the snapshot");
    assert_eq!(first.kind(), Kind::Pose);
    assert_ne!(
        first.header().flags.0 & 0x02,
        0,
        "the first pose a joiner gets is a keyframe"
    );
    assert_eq!(first.bytes, frames[0], "the cached keyframe, byte for byte");
    assert_eq!(hub.metric("poselink_keyframes_served_total"), 1.0);
    // And the hub asks a for a fresh keyframe, so that c can follow its deltas.
    let am = a.member;
    let nk = next(&mut a, Kind::NeedsKeyframe);
    assert_eq!(nk.header().room, h);
    nk.with(|m| match m {
        Message::NeedsKeyframe(n) => assert_eq!((n.publisher, n.person), (am, 0)),
        _ => unreachable!(),
    });
    // A delta before that keyframe is useless to c: b gets it, c does not.
    let delta = publish(&mut a, &mut s, h);
    assert!(!is_keyframe(&delta));
    assert_eq!(next_media(&mut b).bytes, delta);
    s.encoder.force_keyframe();
    let fresh = publish(&mut a, &mut s, h);
    assert!(is_keyframe(&fresh));
    assert_eq!(next_media(&mut b).bytes, fresh);
    assert_eq!(
        next_media(&mut c).bytes,
        fresh,
        "c got the delta it could not decode"
    );
    assert_eq!(
        hub.metric("poselink_drops_total{reason=\"awaiting_keyframe\"}"),
        1.0
    );
    // From now on c follows the deltas.
    let next_delta = publish(&mut a, &mut s, h);
    assert_eq!(next_media(&mut c).bytes, next_delta);
}

#[test]
fn needs_keyframe_is_served_from_the_cache_and_forwarded() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut outsider = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "kf", Role::Owner).handle;
    join_snapshot(&mut b, "kf", Role::Member);
    let mut s = PoseStream::new(22);
    let key = publish(&mut a, &mut s, h);
    let delta = publish(&mut a, &mut s, h);
    assert!(is_keyframe(&key) && !is_keyframe(&delta));
    assert_eq!(next_media(&mut b).bytes, key);
    assert_eq!(next_media(&mut b).bytes, delta);
    b.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: a.member,
            person: 0,
        }),
    );
    // b gets the cached keyframe at once...
    assert_eq!(next_media(&mut b).bytes, key);
    // ...and a is asked for a fresh one.
    let am = a.member;
    let g = next(&mut a, Kind::NeedsKeyframe);
    assert_eq!((g.header().room, g.header().sender), (h, 0));
    g.with(|m| match m {
        Message::NeedsKeyframe(n) => assert_eq!((n.publisher, n.person), (am, 0)),
        _ => unreachable!(),
    });
    assert_eq!(hub.metric("poselink_keyframes_served_total"), 1.0);
    assert_eq!(hub.metric("poselink_keyframe_requests_total"), 1.0);
    // Naming someone who is not in the room, or asking about a room one is not in.
    b.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: outsider.member,
            person: 0,
        }),
    );
    expect_error(&mut b, NO_SUCH_MEMBER, Kind::NeedsKeyframe);
    outsider.send(
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: am,
            person: 0,
        }),
    );
    expect_error(&mut outsider, NOT_MEMBER, Kind::NeedsKeyframe);
    assert!(
        outsider
            .recv_until(Duration::from_millis(100), |g| g.kind().is_media())
            .is_none(),
        "a non-member was served a keyframe"
    );
}

#[test]
fn audio_is_acknowledged_and_duplicates_are_not_relayed() {
    assert_eq!(Kind::Audio as u8, 0x11);
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "au", Role::Owner).handle;
    join_snapshot(&mut b, "au", Role::Member);
    join_snapshot(&mut c, "au", Role::Viewer);
    let sent: Vec<Vec<u8>> = (1..=3).map(|seq| audio_message(h, a.member, seq)).collect();
    for m in &sent {
        a.send_bytes(m);
    }
    let sent_at = Instant::now();
    // Acks carry the audio kind and climb to the highest seq within ~200 ms.
    let mut last_seq = 0;
    let ack = a.recv_until(T, |g| {
        if g.kind() != Kind::Ack {
            return false;
        }
        let (kind, seq) = g.with(|m| match m {
            Message::Ack(k) => (k.kind, k.seq),
            _ => unreachable!(),
        });
        assert_eq!((kind, g.header().room), (0x11, h));
        assert!(seq > last_seq && seq <= 3, "ack {seq} after {last_seq}");
        last_seq = seq;
        seq == 3
    });
    assert!(ack.is_some(), "no ack of seq 3");
    assert!(
        sent_at.elapsed() < Duration::from_millis(500),
        "ack took {:?}",
        sent_at.elapsed()
    );
    for r in [&mut b, &mut c] {
        for m in &sent {
            assert_eq!(&next_media(r).bytes, m);
        }
    }
    // Resent chunks are dropped; the next new one goes through.
    a.send_bytes(&sent[1]);
    a.send_bytes(&sent[2]);
    let fourth = audio_message(h, a.member, 4);
    a.send_bytes(&fourth);
    for r in [&mut b, &mut c] {
        let mut kinds = Vec::new();
        let g = r
            .recv_until(T, |g| {
                kinds.push(g.kind());
                g.kind().is_media()
            })
            .expect("chunk 4");
        assert_eq!(g.bytes, fourth, "a duplicate was relayed");
        assert!(!kinds.contains(&Kind::Ack), "acks go to the publisher only");
    }
    let ack = next(&mut a, Kind::Ack);
    ack.with(|m| match m {
        Message::Ack(k) => assert_eq!((k.kind, k.seq), (0x11, 4)),
        _ => unreachable!(),
    });
    assert_eq!(
        hub.metric("poselink_drops_total{reason=\"duplicate_audio\"}"),
        2.0
    );
}

#[test]
fn rooms_are_listed_with_members_rate_and_drops() {
    let hub = dev_hub();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let mut c = Client::session(hub.addr, "");
    let h = join_snapshot(&mut a, "listed-1", Role::Owner).handle;
    join_snapshot(&mut b, "listed-1", Role::Viewer);
    join_snapshot(&mut c, "listed-2", Role::Owner);
    let (status, body) = hub.http_get("/rooms");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let find = |v: &serde_json::Value, name: &str| {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {v}"))
    };
    assert_eq!(find(&v, "listed-1")["members"], 2);
    assert_eq!(find(&v, "listed-2")["members"], 1);
    // About 50 frames a second; after 2.2 s (two samples) the listing, taken
    // while publishing goes on, shows the rate of the last second.
    let mut s = PoseStream::new(5);
    let start = Instant::now();
    let mut sent = 0u32;
    while start.elapsed() < Duration::from_millis(2_200) {
        publish(&mut a, &mut s, h);
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, body) = hub.http_get("/rooms");
    let rate = f64::from(sent) / start.elapsed().as_secs_f64();
    for _ in 0..sent {
        next_media(&mut b);
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fps = find(&v, "listed-1")["fps"].as_f64().unwrap();
    assert!(
        (fps - rate).abs() <= 0.4 * rate,
        "fps {fps} in {v}, published at {rate:.1}/s"
    );
    assert_eq!(find(&v, "listed-1")["drops"], 0);
    assert_eq!(find(&v, "listed-2")["fps"], 0.0);
}
