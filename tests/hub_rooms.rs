//! The hub's sessions and rooms over real sockets on 127.0.0.1: hello, join, the
//! snapshot and member events, leave, roles, kick, close, the grace period.
#![cfg(feature = "std")]

mod common;

use std::time::Duration;

use common::*;
use poselink::proto::{Kind, Message, Role};

const T: Duration = Duration::from_secs(5);

#[test]
fn join_snapshot_member_events_and_relay() {
    let hub = TestHub::dev();
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = a.join("studio-1", Role::Owner).unwrap();
    let hb = b.join("studio-1", Role::Member).unwrap();
    assert_eq!(h, hb);
    let joined = a.recv_until(T, |g| g.kind() == Kind::MemberJoined).expect("member joined");
    joined.with(|m| match m {
        Message::MemberJoined(j) => assert_eq!(j.member.member, b.member),
        _ => unreachable!(),
    });
    // Pose from b reaches a byte for byte.
    let mut s = PoseStream::new(1);
    let sent = s.next(h, b.member).to_vec();
    b.send_bytes(&sent);
    let got = a.recv_until(T, |g| g.kind() == Kind::Pose).expect("pose relayed");
    assert_eq!(got.bytes, sent);
    drop(b);
    let left = a.recv_until(T, |g| g.kind() == Kind::MemberLeft).expect("member left");
    assert_eq!(left.header().room, h);
    hub.stop();
}
