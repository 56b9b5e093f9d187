//! The hub's authentication and authorisation over real sockets on 127.0.0.1:
//! the hello's token (valid, missing, forged, expired, garbage, another
//! algorithm), the first message, the hello timeout, and what a token lets a join
//! do (room patterns, roles, `create`), with the error codes of PROTOCOL.md 6.3,
//! the close codes (4000 + error code) and the error counters.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{Hello, Join, Kind, Message, Role, RoleChanged};
use poselink::token::{Claims, Grant, TokenKey};

const T: Duration = Duration::from_secs(5);

// Error codes (PROTOCOL.md 6.3).
const BAD_MESSAGE: u16 = 1;
const UNAUTHENTICATED: u16 = 3;
const TOKEN_INVALID: u16 = 4;
const TOKEN_EXPIRED: u16 = 5;
const FORBIDDEN: u16 = 6;
const NO_SUCH_ROOM: u16 = 9;

/// A secured hub with small tables (the tests run many hubs at once).
fn hub() -> TestHub {
    TestHub::start(HubConfig {
        max_connections: 32,
        max_rooms: 16,
        ..secured()
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a welcome said.
#[derive(Debug)]
struct Welcomed {
    member: u16,
    user: String,
    sender: u16,
    room: u16,
    heartbeat_ms: u32,
    max_message: u32,
}

/// Sends a hello with `token`; the welcome's fields, or the error (code, about, reason).
fn hello(c: &mut Client, token: &str) -> Result<Welcomed, (u16, u8, String)> {
    c.send(
        0,
        &Message::Hello(Hello {
            minor: 0,
            token,
            resume: 0,
            client: "hub_auth",
            stream: 0,
        }),
    );
    let g = c
        .recv_until(T, |g| matches!(g.kind(), Kind::Welcome | Kind::Error))
        .unwrap_or_else(|| panic!("no answer to the hello (closed: {:?})", c.closed));
    let h = g.header();
    g.with(|m| match m {
        Message::Welcome(w) => {
            c.member = w.member;
            Ok(Welcomed {
                member: w.member,
                user: w.user.to_string(),
                sender: h.sender,
                room: h.room,
                heartbeat_ms: w.heartbeat_ms,
                max_message: w.max_message,
            })
        }
        Message::Error(e) => Err((e.code.0, e.about, e.reason.to_string())),
        other => unreachable!("{other:?}"),
    })
}

/// Sends a join; Ok(handle, user ids in the snapshot) or the error (code, about, reason).
fn join(c: &mut Client, room: &str, role: Role) -> Result<(u16, Vec<String>), (u16, u8, String)> {
    c.send(0, &Message::Join(Join { room, role }));
    let g = c
        .recv_until(T, |g| matches!(g.kind(), Kind::RoomSnapshot | Kind::Error))
        .unwrap_or_else(|| panic!("no answer to the join of {room} (closed: {:?})", c.closed));
    let h = g.header().room;
    g.with(|m| match m {
        Message::RoomSnapshot(s) => {
            assert_eq!(s.name, room);
            assert_eq!(s.your_role, role);
            Ok((h, s.members.iter().map(|m| m.user.to_string()).collect()))
        }
        Message::Error(e) => Err((e.code.0, e.about, e.reason.to_string())),
        other => unreachable!("{other:?}"),
    })
}

/// A hello with `token` must be refused with `code`, a reason containing
/// `mention`, and a close with 4000 + `code`.
fn refused_hello(hub: &TestHub, token: &str, code: u16, mention: &str) {
    let mut c = Client::connect(hub.addr);
    let (got, about, reason) = hello(&mut c, token).expect_err("the hello must be refused");
    assert_eq!(got, code, "error code (reason: {reason})");
    assert_eq!(about, Kind::Hello as u8);
    assert!(
        reason.to_lowercase().contains(mention),
        "the reason {reason:?} should mention {mention:?}"
    );
    let (close, _) = c.expect_close(T);
    assert_eq!(close, 4000 + code);
}

fn grants(g: &[(&str, Role, bool)]) -> Vec<Grant> {
    g.iter()
        .map(|&(room, role, create)| Grant {
            room: room.into(),
            role,
            create,
        })
        .collect()
}

fn counter(hub: &TestHub, kind: &str) -> f64 {
    hub.metric(&format!("poselink_errors_total{{kind=\"{kind}\"}}"))
}

#[test]
fn a_valid_token_is_welcomed_with_its_user() {
    let hub = hub();
    let mut a = Client::connect(hub.addr);
    let w = hello(
        &mut a,
        &token("pi-kitchen", &[("studio-*", Role::Member, true)], 60),
    )
    .expect("welcome");
    assert_eq!(w.user, "pi-kitchen");
    assert_ne!(w.member, 0, "member 0 is the hub itself");
    assert_eq!(
        (w.sender, w.room),
        (0, 0),
        "a welcome comes from the hub and is about no room"
    );
    assert_eq!(
        (w.heartbeat_ms, w.max_message),
        (5_000, 65_536),
        "the configured limits"
    );
    let mut b = Client::connect(hub.addr);
    let wb = hello(
        &mut b,
        &token("browser-1", &[("studio-*", Role::Viewer, true)], 60),
    )
    .expect("welcome");
    assert_eq!(wb.user, "browser-1");
    assert_ne!(wb.member, 0);
    assert_ne!(wb.member, w.member, "two sessions get two member ids");
    // The snapshot names both by their token's user.
    join(&mut a, "studio-1", Role::Member).unwrap();
    let (_, users) = join(&mut b, "studio-1", Role::Viewer).unwrap();
    assert_eq!(users, ["pi-kitchen", "browser-1"]);
    assert_eq!(hub.metric("poselink_sessions"), 2.0);
    assert_eq!(hub.metric("poselink_sessions_total"), 2.0);
}

#[test]
fn a_dev_hub_welcomes_an_empty_token_as_anonymous() {
    let hub = TestHub::start(HubConfig {
        max_connections: 32,
        max_rooms: 16,
        ..HubConfig::local_dev()
    });
    let mut a = Client::connect(hub.addr);
    let w = hello(&mut a, "").expect("welcome");
    assert_eq!(w.user, format!("anon-{}", w.member));
    // Any room, as owner.
    join(&mut a, "anything", Role::Owner).unwrap();
}

#[test]
fn a_missing_token_is_unauthenticated() {
    let hub = hub();
    refused_hello(&hub, "", UNAUTHENTICATED, "token");
    assert_eq!(counter(&hub, "unauthenticated"), 1.0);
    assert_eq!(hub.metric("poselink_sessions_total"), 0.0);
}

#[test]
fn a_forged_token_is_invalid() {
    let hub = hub();
    let other = TokenKey::hs256(b"another secret, also at least 32 bytes long").unwrap();
    let forged = other
        .mint(&Claims {
            sub: "mallory".into(),
            exp: now_secs() + 60,
            rooms: grants(&[("*", Role::Owner, true)]),
        })
        .unwrap();
    refused_hello(&hub, &forged, TOKEN_INVALID, "signature");
    // A valid token whose payload was swapped for another one's fails the same way.
    let good = token("alice", &[("studio-1", Role::Viewer, false)], 60);
    let better = token("alice", &[("*", Role::Owner, true)], 60);
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = better.split('.').nth(1).unwrap();
    refused_hello(&hub, &parts.join("."), TOKEN_INVALID, "signature");
    assert_eq!(counter(&hub, "token_invalid"), 2.0);
}

#[test]
fn an_expired_token_is_refused() {
    let hub = hub();
    refused_hello(
        &hub,
        &token("alice", &[("*", Role::Owner, true)], -10),
        TOKEN_EXPIRED,
        "expired",
    );
    assert_eq!(counter(&hub, "token_expired"), 1.0);
}

#[test]
fn a_garbage_token_is_invalid() {
    let hub = hub();
    refused_hello(&hub, "garbage", TOKEN_INVALID, "jwt");
    refused_hello(&hub, "a.b.c", TOKEN_INVALID, "jwt");
    assert_eq!(counter(&hub, "token_invalid"), 2.0);
}

#[test]
fn a_token_signed_with_another_algorithm_is_invalid() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let hub = hub();
    let claims = Claims {
        sub: "alice".into(),
        exp: now_secs() + 60,
        rooms: grants(&[("*", Role::Owner, true)]),
    };
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    refused_hello(&hub, &hs384, TOKEN_INVALID, "hs256");
    // Right secret and algorithm, but not our claims.
    let junk = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "alice", "exp": now_secs() + 60}),
        &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    refused_hello(&hub, &junk, TOKEN_INVALID, "claims");
}

#[test]
fn the_first_message_must_be_a_hello() {
    let hub = hub();
    let mut c = Client::connect(hub.addr);
    c.send(
        0,
        &Message::Join(Join {
            room: "studio-1",
            role: Role::Viewer,
        }),
    );
    let g = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error");
    let (code, about, reason) = g.with(|m| match m {
        Message::Error(e) => (e.code.0, e.about, e.reason.to_string()),
        _ => unreachable!(),
    });
    assert_eq!(
        (code, about),
        (UNAUTHENTICATED, Kind::Join as u8),
        "{reason}"
    );
    assert!(reason.contains("hello"), "{reason}");
    assert_eq!(c.expect_close(T).0, 4003);
    // Media first is refused the same way.
    let mut d = Client::connect(hub.addr);
    let mut s = PoseStream::new(1);
    d.send_bytes(s.next(1, 0));
    let (code, reason) = d
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error")
        .error()
        .unwrap();
    assert_eq!(code, UNAUTHENTICATED, "{reason}");
    assert_eq!(d.expect_close(T).0, 4003);
    assert_eq!(counter(&hub, "unauthenticated"), 2.0);
    assert_eq!(hub.metric("poselink_sessions_total"), 0.0);
}

#[test]
fn no_hello_in_time_is_unauthenticated() {
    let hub = TestHub::start(HubConfig {
        max_connections: 32,
        max_rooms: 16,
        handshake_timeout_ms: 150,
        ..secured()
    });
    let started = Instant::now();
    let mut c = Client::connect(hub.addr);
    let (code, reason) = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error")
        .error()
        .unwrap();
    assert_eq!(code, UNAUTHENTICATED, "{reason}");
    assert!(reason.contains("hello"), "{reason}");
    assert_eq!(c.expect_close(T).0, 4003);
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "closed before the timeout"
    );
    assert_eq!(counter(&hub, "handshake_timeout"), 1.0);
}

#[test]
fn a_second_hello_is_refused_and_the_session_goes_on() {
    let hub = hub();
    let tok = token("alice", &[("studio-*", Role::Member, true)], 60);
    let mut a = Client::connect(hub.addr);
    let w = hello(&mut a, &tok).unwrap();
    let (code, about, reason) = hello(&mut a, &tok).expect_err("a second hello is refused");
    assert_eq!((code, about), (BAD_MESSAGE, Kind::Hello as u8), "{reason}");
    assert!(reason.contains("hello"), "{reason}");
    assert_eq!(a.member, w.member);
    join(&mut a, "studio-1", Role::Member).expect("the session goes on");
}

#[test]
fn a_room_not_granted_is_forbidden_and_the_connection_stays() {
    let hub = hub();
    let mut a = Client::connect(hub.addr);
    hello(
        &mut a,
        &token("alice", &[("studio-*", Role::Member, true)], 60),
    )
    .unwrap();
    let (code, about, reason) = join(&mut a, "other", Role::Member).expect_err("not granted");
    assert_eq!((code, about), (FORBIDDEN, Kind::Join as u8), "{reason}");
    assert!(
        reason.contains("grant") && reason.contains("other"),
        "{reason}"
    );
    // A pattern is a prefix, not a substring.
    let (code, _, reason) = join(&mut a, "my-studio-1", Role::Viewer).expect_err("not granted");
    assert_eq!(code, FORBIDDEN, "{reason}");
    assert_eq!(counter(&hub, "forbidden"), 2.0);
    assert_eq!(
        hub.metric("poselink_rooms"),
        0.0,
        "a refused join creates nothing"
    );
    // Still connected: an allowed join works.
    let (h, users) = join(&mut a, "studio-1", Role::Member).expect("allowed join");
    assert_ne!(h, 0);
    assert_eq!(users, ["alice"]);
    assert!(a.closed.is_none());
}

#[test]
fn a_role_above_the_grant_is_forbidden() {
    let hub = hub();
    let mut v = Client::connect(hub.addr);
    hello(
        &mut v,
        &token("watcher", &[("studio-*", Role::Viewer, true)], 60),
    )
    .unwrap();
    for role in [Role::Member, Role::Owner] {
        let (code, about, reason) = join(&mut v, "studio-1", role).expect_err("role not granted");
        assert_eq!((code, about), (FORBIDDEN, Kind::Join as u8), "{reason}");
        assert!(
            reason.contains("role") && reason.contains(role.name()),
            "{reason}"
        );
    }
    let mut m = Client::connect(hub.addr);
    hello(
        &mut m,
        &token("board", &[("studio-*", Role::Member, true)], 60),
    )
    .unwrap();
    let (code, _, reason) = join(&mut m, "studio-1", Role::Owner).expect_err("role not granted");
    assert_eq!(code, FORBIDDEN, "{reason}");
    assert_eq!(counter(&hub, "forbidden"), 3.0);
    // The granted role, or a lower one, is fine.
    join(&mut v, "studio-1", Role::Viewer).expect("viewer");
    join(&mut m, "studio-2", Role::Viewer).expect("lower than granted");
    join(&mut m, "studio-1", Role::Member).expect("as granted");
}

#[test]
fn the_first_matching_grant_decides() {
    let hub = hub();
    let mut a = Client::connect(hub.addr);
    hello(
        &mut a,
        &token(
            "alice",
            &[
                ("studio-vip", Role::Viewer, true),
                ("studio-*", Role::Owner, true),
            ],
            60,
        ),
    )
    .unwrap();
    let (code, _, reason) =
        join(&mut a, "studio-vip", Role::Owner).expect_err("the exact grant comes first");
    assert_eq!(code, FORBIDDEN, "{reason}");
    join(&mut a, "studio-vip", Role::Viewer).unwrap();
    join(&mut a, "studio-7", Role::Owner).unwrap();
}

#[test]
fn create_false_needs_an_existing_room() {
    let hub = hub();
    let mut viewer = Client::connect(hub.addr);
    hello(
        &mut viewer,
        &token("watcher", &[("gym", Role::Viewer, false)], 60),
    )
    .unwrap();
    let (code, about, reason) = join(&mut viewer, "gym", Role::Viewer).expect_err("no such room");
    assert_eq!((code, about), (NO_SUCH_ROOM, Kind::Join as u8), "{reason}");
    assert!(reason.contains("no such room"), "{reason}");
    assert_eq!(counter(&hub, "no_such_room"), 1.0);
    assert_eq!(hub.metric("poselink_rooms"), 0.0);
    // Another user creates it; now the join works, into the same room.
    let mut owner = Client::connect(hub.addr);
    hello(
        &mut owner,
        &token("coach", &[("gym", Role::Owner, true)], 60),
    )
    .unwrap();
    let (h, _) = join(&mut owner, "gym", Role::Owner).unwrap();
    let (hv, users) = join(&mut viewer, "gym", Role::Viewer).expect("the room exists now");
    assert_eq!(hv, h);
    assert_eq!(users, ["coach", "watcher"]);
    assert_eq!(hub.metric("poselink_rooms"), 1.0);
}

#[test]
fn a_token_that_expires_during_the_session_stops_joins() {
    let hub = hub();
    let exp = now_secs() + 2;
    let key = TokenKey::hs256(SECRET.as_bytes()).unwrap();
    let tok = key
        .mint(&Claims {
            sub: "brief".into(),
            exp,
            rooms: grants(&[("studio-*", Role::Member, true)]),
        })
        .unwrap();
    let mut a = Client::connect(hub.addr);
    hello(&mut a, &tok).expect("still valid for at least a second");
    let (h, _) = join(&mut a, "studio-1", Role::Member).unwrap();
    // Wait until the hub's clock (the system clock, in whole seconds) is past it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while now_secs() < exp {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, about, reason) = join(&mut a, "studio-2", Role::Member).expect_err("expired");
    assert_eq!((code, about), (TOKEN_EXPIRED, Kind::Join as u8), "{reason}");
    assert!(reason.contains("expired"), "{reason}");
    // The session itself goes on: what was joined still works.
    let mut s = PoseStream::new(3);
    a.send_bytes(s.next(h, a.member));
    a.send(0, &Message::Ping(poselink::proto::Ping { t0_us: 7 }));
    let g = a
        .recv_until(T, |g| matches!(g.kind(), Kind::Pong | Kind::Error))
        .expect("pong");
    assert_eq!(g.kind(), Kind::Pong, "{:?}", g.error());
}

#[test]
fn shutdown_tells_every_session_it_is_going_away() {
    let hub = hub();
    let mut a = Client::connect(hub.addr);
    hello(
        &mut a,
        &token("alice", &[("studio-*", Role::Member, true)], 60),
    )
    .unwrap();
    join(&mut a, "studio-1", Role::Member).unwrap();
    let mut waiting = Client::connect(hub.addr); // no hello yet
    hub.handle.shutdown();
    for c in [&mut a, &mut waiting] {
        let (code, reason) = c
            .recv_until(T, |g| g.kind() == Kind::Error)
            .expect("an error")
            .error()
            .unwrap();
        assert_eq!(code, 15, "GOING_AWAY: {reason}");
        assert!(reason.contains("shutting down"), "{reason}");
        assert_eq!(c.expect_close(T).0, 1001);
    }
    drop((a, waiting));
    let report = hub.stop();
    assert_eq!(report.stats.sessions_opened, 1);
}

#[test]
fn an_owner_cannot_raise_a_member_above_its_token() {
    let hub = hub();
    let mut owner = Client::connect(hub.addr);
    hello(&mut owner, &token("ana", &[("gym", Role::Owner, true)], 60)).unwrap();
    let (h, _) = join(&mut owner, "gym", Role::Owner).unwrap();
    let mut viewer = Client::connect(hub.addr);
    hello(
        &mut viewer,
        &token("screen", &[("gym", Role::Viewer, false)], 60),
    )
    .unwrap();
    join(&mut viewer, "gym", Role::Viewer).unwrap();
    let mut board = Client::connect(hub.addr);
    hello(
        &mut board,
        &token("board", &[("gym", Role::Owner, false)], 60),
    )
    .unwrap();
    join(&mut board, "gym", Role::Viewer).unwrap();

    // Promoting the viewer-only token is refused, and nothing changes.
    let promote = |m: u16, role: Role| Message::RoleChanged(RoleChanged { member: m, role });
    owner.send(h, &promote(viewer.member, Role::Member));
    let err = owner
        .recv_until(T, |g| g.error().is_some())
        .expect("an error");
    let (code, reason) = err.error().unwrap();
    assert_eq!(code, FORBIDDEN, "{reason}");
    assert!(
        reason.contains("token") && reason.contains("member"),
        "{reason}"
    );
    let mut s = PoseStream::new(9);
    let m = s.next(h, viewer.member).to_vec();
    viewer.send_bytes(&m);
    let e = viewer
        .recv_until(T, |g| g.error().is_some())
        .expect("still a viewer");
    assert_eq!(e.error().unwrap().0, FORBIDDEN);

    // A member whose token grants more may be promoted, up to what it grants.
    owner.send(h, &promote(board.member, Role::Owner));
    let changed = owner
        .recv_until(T, |g| g.kind() == Kind::RoleChanged)
        .expect("role changed");
    changed.with(|m| match m {
        Message::RoleChanged(rc) => assert_eq!((rc.member, rc.role), (board.member, Role::Owner)),
        _ => unreachable!(),
    });
}
