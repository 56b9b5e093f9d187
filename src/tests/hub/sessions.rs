//! Sessions in simulation: the hello and its refusals, resuming inside and after
//! the grace period, heartbeats.

use crate::hub::{DropReason, Fault};
use crate::proto::{Kind, LeaveReason, Message, Ping, Role, seal};

use super::util::{Frame, Sim, T0, ack, audio, config, secured};

const UNSUPPORTED_VERSION: u16 = 2;
const UNAUTHENTICATED: u16 = 3;
const TOKEN_INVALID: u16 = 4;
const TOKEN_EXPIRED: u16 = 5;
const BAD_MESSAGE: u16 = 1;
const GOING_AWAY: u16 = 15;

/// The member that left, and why, if `f` is a member_left.
fn member_left(f: &Frame) -> Option<(u16, LeaveReason)> {
    f.with(|m| match m {
        Message::MemberLeft(l) => Some((l.member, l.reason)),
        _ => None,
    })
    .flatten()
}

#[test]
fn a_valid_token_is_welcomed_with_its_user_and_a_resume_id() {
    let mut sim = Sim::new(secured());
    let p = sim.connect();
    let token = sim.token("pi-kitchen", &[("gym", Role::Member, true)], 60);
    let hello = crate::proto::Hello {
        minor: 0,
        token: &token,
        resume: 0,
        client: "sim",
        stream: 0,
    };
    sim.send(p, 0, &Message::Hello(hello));
    let welcome = sim.next_msg(p, |k| k == Kind::Welcome).expect("a welcome");
    let (member, user, resume, heartbeat, at) = welcome
        .with(|m| match m {
            Message::Welcome(w) => (
                w.member,
                w.user.to_string(),
                w.resume,
                w.heartbeat_ms,
                w.server_time_us,
            ),
            _ => unreachable!(),
        })
        .unwrap();
    assert_ne!(member, 0);
    assert_eq!(user, "pi-kitchen");
    assert_ne!(resume, 0);
    assert_eq!(heartbeat, 1_000);
    assert_eq!(at, sim.now, "the welcome carries the core's clock");
    assert_eq!(sim.core.member(sim.peers[p].conn), Some(member));
    assert_eq!(sim.core.stats().sessions_opened, 1);

    // A second hello is refused; the session goes on.
    sim.peers[p].member = member;
    sim.send(p, 0, &Message::Hello(hello));
    let errors = sim.take_errors(p);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].0, errors[0].1), (BAD_MESSAGE, Kind::Hello as u8));
    sim.send(p, 0, &Message::Ping(Ping { t0_us: 7 }));
    let pong = sim.next_msg(p, |k| k == Kind::Pong).expect("a pong");
    let (t0, t1, t2) = pong
        .with(|m| match m {
            Message::Pong(p) => (p.t0_us, p.t1_us, p.t2_us),
            _ => unreachable!(),
        })
        .unwrap();
    assert_eq!(
        (t0, t1, t2),
        (7, sim.now, sim.now),
        "the pong's times are `now`"
    );
}

#[test]
fn every_refused_hello_gets_its_error_and_a_close() {
    let mut sim = Sim::new(secured());
    let forged = {
        let other = Sim::new(crate::hub::HubConfig {
            secret: Some("another-secret-another-secret-another-01".into()),
            ..secured()
        });
        other.token("mallory", &[("*", Role::Owner, true)], 60)
    };
    let cases = [
        ("no token", String::new(), UNAUTHENTICATED),
        ("garbage", "not.a.jwt".to_string(), TOKEN_INVALID),
        ("another secret", forged, TOKEN_INVALID),
        (
            "expired",
            sim.token("late", &[("gym", Role::Member, true)], -5),
            TOKEN_EXPIRED,
        ),
    ];
    for (what, token, code) in cases {
        let p = sim.connect();
        let refused = sim.hello(p, &token);
        assert_eq!(refused.as_ref().map_err(|e| e.0), Err(code), "{what}");
        assert!(!refused.unwrap_err().1.is_empty(), "{what}: a reason");
        let close = sim.close_of(p).expect("a close frame");
        assert_eq!(close.0, 4000 + code, "{what}");
        assert!(
            sim.peers[p].shut,
            "{what}: the write half is shut once written"
        );
        assert!(!sim.peers[p].closed, "{what}: the peer may still answer");
        // The peer never closes: the linger ends it.
        sim.advance(900);
        assert!(!sim.peers[p].closed, "{what}: still lingering");
        sim.advance(200);
        assert!(sim.peers[p].closed, "{what}: closed after the linger");
    }
    assert_eq!(sim.core.stats().errors[TOKEN_INVALID as usize], 2);
    assert_eq!(sim.core.stats().sessions_opened, 0);
    assert_eq!(sim.core.connections(), 0);
}

#[test]
fn a_token_checked_against_the_simulated_wall_clock() {
    let mut sim = Sim::new(secured());
    let token = sim.token("ana", &[("gym", Role::Member, true)], 10);
    // Nine seconds on, the token is good; its session joins.
    sim.advance(9_000);
    let p = sim.connect();
    sim.hello(p, &token).expect("welcome before expiry");
    // Past its expiry the session stays, but may join nothing more.
    sim.advance(2_000);
    assert_eq!(
        sim.join(p, "gym", Role::Member).map_err(|e| e.0),
        Err(TOKEN_EXPIRED)
    );
    // A corrected wall clock counts too.
    let q = sim.connect();
    let fresh = sim.token("bo", &[("gym", Role::Member, true)], 100);
    sim.core
        .handle_wall_clock(sim.now, (sim.unix_secs() + 1_000) * 1_000_000);
    assert_eq!(sim.hello(q, &fresh).map_err(|e| e.0), Err(TOKEN_EXPIRED));

    // Expiry is seen within a millisecond of the second it names.
    let exp = sim.unix_secs() + 100;
    let r = sim.connect();
    let edge = sim.token("cy", &[("gym", Role::Member, true)], 100);
    sim.core.handle_wall_clock(sim.now, exp * 1_000_000 - 500);
    sim.hello(r, &edge)
        .expect("half a millisecond before its expiry");
    sim.advance(1);
    assert_eq!(
        sim.join(r, "gym", Role::Member).map_err(|e| e.0),
        Err(TOKEN_EXPIRED)
    );
}

#[test]
fn the_first_message_must_be_a_hello() {
    let mut sim = Sim::dev();
    let p = sim.connect();
    sim.send(
        p,
        0,
        &Message::Join(crate::proto::Join {
            room: "gym",
            role: Role::Member,
        }),
    );
    let errors = sim.peers[p]
        .frames
        .iter()
        .filter_map(Frame::error)
        .collect::<Vec<_>>();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].0, errors[0].1),
        (UNAUTHENTICATED, Kind::Join as u8)
    );
    assert!(errors[0].2.contains("hello"), "{errors:?}");
    assert_eq!(sim.close_of(p).map(|c| c.0), Some(4003));
}

#[test]
fn an_unknown_major_version_is_refused_and_closed() {
    let mut sim = Sim::dev();
    let mut ping = vec![0u8; 64];
    let h = crate::proto::Header::new(Kind::Ping, 0, 0, 1, 0);
    let n = crate::proto::encode_control(&h, &Message::Ping(Ping { t0_us: 1 }), &mut ping).unwrap();
    ping.truncate(n);
    ping[0] = 0x20; // version 2.0
    let n = ping.len() - 4;
    seal(&mut ping, n).unwrap();
    // In a session and before the hello alike.
    for hello_first in [true, false] {
        let p = if hello_first {
            sim.session()
        } else {
            sim.connect()
        };
        sim.send_bytes(p, &ping);
        let frames = sim.take(p);
        let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
        assert_eq!(errors.len(), 1, "{frames:?}");
        assert_eq!(
            (errors[0].0, errors[0].1),
            (UNSUPPORTED_VERSION, Kind::Ping as u8)
        );
        let close = frames.iter().find_map(|f| match f {
            Frame::Close(c, _) => Some(*c),
            _ => None,
        });
        assert_eq!(close, Some(4002), "hello first: {hello_first}");
    }
}

#[test]
fn no_hello_in_time_is_unauthenticated() {
    let mut sim = Sim::dev();
    let p = sim.connect();
    sim.advance(950);
    assert!(sim.take(p).is_empty(), "nothing before the deadline");
    sim.advance(100);
    let frames = sim.take(p);
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors.len(), 1, "{frames:?}");
    assert_eq!((errors[0].0, errors[0].1), (UNAUTHENTICATED, 0));
    assert!(errors[0].2.contains("hello"));
    assert!(
        matches!(frames.last(), Some(Frame::Close(4003, _))),
        "{frames:?}"
    );
    assert_eq!(sim.core.stats().faults_of(Fault::HandshakeTimeout), 1);
    // The peer answers the close and hangs up: the slot is free again.
    sim.hang_up(p);
    assert_eq!(sim.core.connections(), 0);
}

/// Resume: the member id comes back, and the publisher's replayed audio is
/// recognised as duplicates; a resume id is good once.
#[test]
fn a_resume_inside_the_grace_period_keeps_the_member_and_drops_replayed_audio() {
    let mut sim = Sim::dev();
    let (rx, h) = sim.member_of("resume", Role::Viewer);
    let p = sim.connect();
    let (member, resume) = sim.hello_resume(p, "", 0).unwrap();
    assert_eq!(sim.join(p, "resume", Role::Member), Ok(h));
    for seq in 1..=5 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    let seqs: Vec<u32> = sim
        .take_kind(rx, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    sim.advance(40);
    let acks: Vec<_> = sim.take(p).iter().filter_map(ack).collect();
    assert_eq!(
        acks,
        [(h, Kind::Audio as u8, 5)],
        "one ack, for the last chunk"
    );

    // The board reboots: its connection vanishes.
    sim.hang_up(p);
    let left = sim.take(rx).iter().find_map(member_left);
    assert_eq!(left, Some((member, LeaveReason::Disconnected)));

    sim.advance(2_000); // inside the 5 s grace period
    let p2 = sim.connect();
    let (member2, resume2) = sim.hello_resume(p2, "", resume).unwrap();
    assert_eq!(member2, member, "the member id comes back");
    assert_ne!(resume2, resume, "each session has its own resume id");
    assert_eq!(sim.join(p2, "resume", Role::Member), Ok(h));
    // It replays from 3, then goes on.
    for seq in 3..=8 {
        sim.send_bytes(p2, &audio(h, member2, seq));
    }
    let seqs: Vec<u32> = sim
        .take_kind(rx, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(seqs, [6, 7, 8], "every chunk once, in order");
    assert_eq!(sim.core.stats().drops_of(DropReason::DuplicateAudio), 3);

    // A resume id is good once.
    let p3 = sim.connect();
    let (member3, _) = sim.hello_resume(p3, "", resume).unwrap();
    assert_ne!(member3, member);
}

#[test]
fn a_resume_after_the_grace_period_is_a_new_session() {
    let mut sim = Sim::dev();
    let (rx, h) = sim.member_of("late", Role::Viewer);
    let p = sim.connect();
    let (member, resume) = sim.hello_resume(p, "", 0).unwrap();
    sim.join(p, "late", Role::Member).unwrap();
    for seq in 1..=3 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    sim.hang_up(p);
    sim.advance(5_100); // past the 5 s grace period
    let p2 = sim.connect();
    let (member2, _) = sim.hello_resume(p2, "", resume).unwrap();
    assert_ne!(member2, member, "a fresh member id");
    sim.join(p2, "late", Role::Member).unwrap();
    sim.take(rx);
    sim.send_bytes(p2, &audio(h, member2, 2));
    let seqs: Vec<u32> = sim
        .take_kind(rx, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(seqs, [2], "nothing is remembered: not a duplicate");
    assert_eq!(sim.core.stats().drops_of(DropReason::DuplicateAudio), 0);
}

/// A session silent for three heartbeat intervals is closed as timed out; one
/// that answers the pings is not.
#[test]
fn a_session_silent_for_three_heartbeats_is_closed_and_announced() {
    let mut sim = Sim::new(config());
    let (a, h) = sim.member_of("heartbeat", Role::Owner);
    let idle = sim.session(); // no room, answers pings only
    let (s, _) = sim.member_of("heartbeat", Role::Member);
    sim.peers[s].auto_pong = false;
    let member = sim.peers[s].member;
    sim.take(a);

    sim.advance(2_950);
    assert!(sim.take(a).iter().all(|f| member_left(f).is_none()));
    assert!(!sim.peers[s].shut);
    sim.advance(100);
    let left: Vec<_> = sim.take(a).iter().filter_map(member_left).collect();
    assert_eq!(left, [(member, LeaveReason::TimedOut)]);
    let frames = sim.take(s);
    // Pings at 1 s and 2 s (the core ticks every 20 ms from the start), each
    // carrying the hub's time; the third interval ends in the timeout.
    let pings: Vec<u64> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Ping(p) => Some(u64::from_le_bytes(p[..].try_into().unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(pings, [T0 + 1_010_000, T0 + 2_010_000], "{frames:?}");
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, GOING_AWAY);
    assert!(
        matches!(frames.last(), Some(Frame::Close(1001, _))),
        "{frames:?}"
    );
    assert_eq!(sim.core.stats().faults_of(Fault::HeartbeatTimeout), 1);
    // No linger for a silent peer: closed at the next tick.
    sim.advance(40);
    assert!(sim.peers[s].closed);
    let _ = h;

    // The readers stay, however long.
    sim.advance(10_000);
    assert!(!sim.peers[a].closed && !sim.peers[idle].closed);
    assert_eq!(sim.core.stats().faults_of(Fault::HeartbeatTimeout), 1);
}
