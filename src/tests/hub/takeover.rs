//! Resuming a session whose connection is still open (the client gave up on it
//! before the hub noticed), and the stream ids the hub passes on: in hellos,
//! member_joined and snapshots, the same after a resume.

use crate::proto::{ErrorCode, Hello, Kind, LeaveReason, Message, Role};

use super::util::{Frame, Sim, audio, secured};

/// Says hello with stream id `stream`, presenting `resume`; (member, resume id).
fn hello_with_stream(sim: &mut Sim, p: usize, token: &str, resume: u64, stream: u64) -> (u16, u64) {
    let hello = Message::Hello(Hello {
        minor: 1,
        token,
        resume,
        client: "sim",
        stream,
    });
    sim.send(p, 0, &hello);
    let got = sim
        .next_msg(p, |k| matches!(k, Kind::Welcome | Kind::Error))
        .expect("an answer to the hello");
    let (member, id) = got
        .with(|m| match m {
            Message::Welcome(w) => (w.member, w.resume),
            other => panic!("not welcomed: {other:?}"),
        })
        .unwrap();
    sim.peers[p].member = member;
    sim.peers[p].resume = id;
    (member, id)
}

/// (member id, stream id) of a member_joined.
fn joined(f: &Frame) -> Option<(u16, u64)> {
    f.with(|m| match m {
        Message::MemberJoined(j) => Some((j.member.member, j.stream)),
        _ => None,
    })
    .flatten()
}

#[test]
fn a_resume_takes_over_a_session_whose_connection_is_still_open() {
    let mut sim = Sim::dev();
    let (rx, h) = sim.member_of("live", Role::Viewer);
    let p = sim.connect();
    let (member, resume) = hello_with_stream(&mut sim, p, "", 0, 4242);
    assert_eq!(sim.join(p, "live", Role::Member), Ok(h));
    assert_eq!(sim.take(rx).iter().find_map(joined), Some((member, 4242)));
    for seq in 1..=5 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    sim.advance(40); // the hub acknowledges 5; the ack is lost with the link
    sim.take(p);
    assert_eq!(sim.take_kind(rx, Kind::Audio).len(), 5);

    // The board saw its connection die and connects again; the hub has not
    // noticed (no FIN, no heartbeat timeout yet): the old connection is open.
    let p2 = sim.connect();
    let (member2, resume2) = hello_with_stream(&mut sim, p2, "", resume, 4242);
    assert_eq!(member2, member, "the resume takes the old session over");
    assert_ne!(resume2, resume);
    let old = sim.take(p);
    let errors: Vec<_> = old.iter().filter_map(Frame::error).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        (errors[0].0, errors[0].1),
        (ErrorCode::SESSION_RESUMED.0, Kind::Hello as u8)
    );
    assert!(
        errors[0].2.contains("resumed from another connection"),
        "{errors:?}"
    );
    let closed = old.iter().find_map(|f| match f {
        Frame::Close(c, _) => Some(*c),
        _ => None,
    });
    assert_eq!(closed, Some(4000 + ErrorCode::SESSION_RESUMED.0));
    let left: Vec<_> = sim
        .take(rx)
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::MemberLeft(l) => Some((l.member, l.reason)),
                _ => None,
            })
            .flatten()
        })
        .collect();
    assert_eq!(left, [(member, LeaveReason::Disconnected)]);

    // The new connection rejoins and replays 4 and 5 (their ack was lost) and
    // goes on: the hub had them, and drops them.
    assert_eq!(sim.join(p2, "live", Role::Member), Ok(h));
    assert_eq!(sim.take(rx).iter().find_map(joined), Some((member, 4242)));
    for seq in 4..=7 {
        sim.send_bytes(p2, &audio(h, member2, seq));
    }
    let seqs: Vec<u32> = sim
        .take_kind(rx, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(seqs, [6, 7], "every chunk once, in order");
}

#[test]
fn only_the_same_user_takes_a_session_over() {
    let mut sim = Sim::new(secured());
    let ana = sim.token("ana", &[("gym", Role::Member, true)], 60);
    let bo = sim.token("bo", &[("gym", Role::Member, true)], 60);
    let p = sim.connect();
    let (member, resume) = hello_with_stream(&mut sim, p, &ana, 0, 7);
    // Another user presenting ana's resume id gets a session of its own, and
    // ana's stays open.
    let q = sim.connect();
    let (other, _) = hello_with_stream(&mut sim, q, &bo, resume, 7);
    assert_ne!(other, member);
    assert!(sim.take(p).is_empty(), "ana's connection is left alone");
    assert_eq!(sim.core.member(sim.peers[p].conn), Some(member));
    // Ana herself takes it over.
    let p2 = sim.connect();
    let (member2, _) = hello_with_stream(&mut sim, p2, &ana, resume, 7);
    assert_eq!(member2, member);
    assert!(sim.close_of(p).is_some());
}

#[test]
fn snapshots_list_every_members_stream_id() {
    let mut sim = Sim::dev();
    let a = sim.connect();
    let (ma, _) = hello_with_stream(&mut sim, a, "", 0, 11);
    sim.join(a, "s", Role::Member).unwrap();
    let old = sim.connect();
    let (mo, _) = sim.hello_resume(old, "", 0).unwrap(); // a minor-0 client: none
    sim.join(old, "s", Role::Member).unwrap();
    let b = sim.connect();
    let (mb, _) = hello_with_stream(&mut sim, b, "", 0, 1 << 50);
    sim.send(
        b,
        0,
        &Message::Join(crate::proto::Join {
            room: "s",
            role: Role::Viewer,
        }),
    );
    let snap = sim
        .next_msg(b, |k| k == Kind::RoomSnapshot)
        .expect("a snapshot");
    let mut got = snap
        .with(|m| match m {
            Message::RoomSnapshot(s) => s
                .members
                .iter_with_streams()
                .map(|(m, s)| (m.member, s))
                .collect::<Vec<_>>(),
            _ => unreachable!(),
        })
        .unwrap();
    got.sort();
    let mut want = vec![(ma, 11), (mo, 0), (mb, 1 << 50)];
    want.sort();
    assert_eq!(got, want);
}

/// In dev mode an anonymous client that gives a stream id is named after it:
/// the same user after its reconnect, under a new member id, so receivers
/// still know its stream; one that gives none is named after its member id.
#[test]
fn an_anonymous_client_is_named_after_its_stream_id() {
    let mut sim = Sim::dev();
    let welcome_user = |sim: &mut Sim, stream: u64| {
        let p = sim.connect();
        let hello = Message::Hello(Hello {
            minor: 1,
            token: "",
            resume: 0,
            client: "sim",
            stream,
        });
        sim.send(p, 0, &hello);
        let got = sim.next_msg(p, |k| k == Kind::Welcome).expect("welcome");
        let (member, user) = got
            .with(|m| match m {
                Message::Welcome(w) => (w.member, w.user.to_string()),
                _ => unreachable!(),
            })
            .unwrap();
        (p, member, user)
    };
    let (p, m1, first) = welcome_user(&mut sim, 0x1234_5678_9abc_def0);
    assert_eq!(first, format!("anon-{:08x}", 0x1234_5678u32 ^ 0x9abc_def0));
    sim.hang_up(p);
    let (_, m2, again) = welcome_user(&mut sim, 0x1234_5678_9abc_def0);
    assert_ne!(m1, m2, "a new member id");
    assert_eq!(again, first, "the same name");
    let (_, m3, plain) = welcome_user(&mut sim, 0);
    assert_eq!(plain, format!("anon-{m3}"));
}
