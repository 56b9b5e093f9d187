//! Resuming a session after a reconnect, over real sockets: the hello presents the
//! previous welcome's resume id; the hub gives the member id back and recognises
//! the audio chunks the publisher replays as duplicates, so receivers get every
//! chunk once, in order.

use std::time::Duration;

use crate::common::*;
use poselink::proto::{Hello, Kind, Message, Role};

const T: Duration = Duration::from_secs(5);

/// Says hello with a resume id; returns (member, resume id of the new session).
fn hello_resume(c: &mut Client, resume: u64) -> (u16, u64) {
    c.send(
        0,
        &Message::Hello(Hello {
            minor: 0,
            token: "",
            resume,
            client: "resume-test",
            stream: 0,
        }),
    );
    let w = c
        .recv_until(T, |g| g.kind() == Kind::Welcome)
        .expect("welcome");
    let (member, id) = w.with(|m| match m {
        Message::Welcome(w) => (w.member, w.resume),
        _ => unreachable!(),
    });
    c.member = member;
    (member, id)
}

fn audio_seqs(c: &mut Client, n: usize) -> Vec<u32> {
    let mut seqs = Vec::new();
    for _ in 0..n {
        match c.recv_until(T, |g| g.kind() == Kind::Audio) {
            Some(g) => seqs.push(g.header().seq),
            None => break,
        }
    }
    seqs
}

#[test]
fn a_resumed_publisher_keeps_its_member_id_and_its_replayed_audio_is_deduplicated() {
    let hub = TestHub::dev();
    let mut rx = Client::session(hub.addr, "");
    rx.join("resume", Role::Viewer).unwrap();

    let mut p = Client::connect(hub.addr);
    let (member, resume) = hello_resume(&mut p, 0);
    assert_ne!(resume, 0, "the welcome offers a resume id");
    let h = p.join("resume", Role::Member).unwrap();
    for seq in 1..=5 {
        p.send_bytes(&audio_message(h, member, seq));
    }
    // The hub acknowledges the audio it relayed.
    let ack = p.recv_until(T, |g| g.kind() == Kind::Ack).expect("an ack");
    assert!(
        ack.with(|m| matches!(m, Message::Ack(a) if a.kind == Kind::Audio as u8 && a.seq >= 1))
    );
    assert_eq!(audio_seqs(&mut rx, 5), vec![1, 2, 3, 4, 5]);

    // The board reboots: its connection vanishes.
    drop(p);
    rx.recv_until(T, |g| g.kind() == Kind::MemberLeft)
        .expect("member left");

    let mut p2 = Client::connect(hub.addr);
    let (member2, resume2) = hello_resume(&mut p2, resume);
    assert_eq!(
        member2, member,
        "the resumed session has its member id back"
    );
    assert_ne!(resume2, resume, "each session gets a new resume id");
    let h2 = p2.join("resume", Role::Member).unwrap();
    assert_eq!(h2, h);
    // It replays from 3 (its last acknowledged was, say, 2), then goes on.
    for seq in 3..=8 {
        p2.send_bytes(&audio_message(h2, member2, seq));
    }
    assert_eq!(
        audio_seqs(&mut rx, 3),
        vec![6, 7, 8],
        "every chunk once, in order"
    );
    assert!(
        rx.recv_until(Duration::from_millis(300), |g| g.kind() == Kind::Audio)
            .is_none()
    );
    assert_eq!(
        hub.metric("poselink_drops_total{reason=\"duplicate_audio\"}"),
        3.0
    );

    // A resume id is good once: presenting it again gives a fresh member id.
    let mut p3 = Client::connect(hub.addr);
    let (member3, _) = hello_resume(&mut p3, resume);
    assert_ne!(member3, member);
}

/// Issue #17 item 7: the publisher's old connection is still open (the hub has
/// not noticed it died) when it resumes from a new one: the hub closes the old
/// connection, saying why, and the new one gets the member id and the audio
/// positions at once.
#[test]
fn a_resume_takes_over_a_session_whose_connection_is_still_open() {
    let hub = TestHub::dev();
    let mut rx = Client::session(hub.addr, "");
    rx.join("takeover", Role::Viewer).unwrap();

    let mut old = Client::connect(hub.addr);
    let (member, resume) = hello_resume(&mut old, 0);
    let h = old.join("takeover", Role::Member).unwrap();
    for seq in 1..=3 {
        old.send_bytes(&audio_message(h, member, seq));
    }
    assert_eq!(audio_seqs(&mut rx, 3), [1, 2, 3]);

    // `old` stays connected; a new connection presents its resume id.
    let mut new = Client::connect(hub.addr);
    let (member2, _) = hello_resume(&mut new, resume);
    assert_eq!(member2, member, "the member id comes back at once");
    let e = old
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("the old connection is told");
    let (code, why) = e.error().expect("an error");
    assert_eq!(code, poselink::proto::ErrorCode::SESSION_RESUMED.0);
    assert!(why.contains("resumed from another connection"), "{why}");
    let (close, _) = old.expect_close(T);
    assert_eq!(close, 4000 + poselink::proto::ErrorCode::SESSION_RESUMED.0);

    // The replay of 2 and 3 (their acks, say, were lost) is dropped; 4 goes on.
    let h2 = new.join("takeover", Role::Member).unwrap();
    for seq in 2..=4 {
        new.send_bytes(&audio_message(h2, member2, seq));
    }
    assert_eq!(audio_seqs(&mut rx, 1), [4]);
}
