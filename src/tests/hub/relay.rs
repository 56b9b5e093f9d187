//! The relay in simulation: fan-out, slow receivers (drops, control kept, the
//! stuck disconnect), keyframes to joiners and on request, audio
//! acknowledgements and duplicates.

use crate::hub::{DropReason, Fault, HubConfig};
use crate::proto::{Kind, LeaveReason, Message, NeedsKeyframe, Role};

use super::util::{Frame, Poses, Sim, ack, audio, config, is_keyframe};

const NOT_MEMBER: u16 = 10;
const NO_SUCH_MEMBER: u16 = 11;

/// The bytes of the protocol messages of `kind` peer `p` got (the rest dropped).
fn media(sim: &mut Sim, p: usize, kind: Kind) -> Vec<Vec<u8>> {
    sim.take(p)
        .into_iter()
        .filter(|f| f.kind() == Some(kind))
        .map(|f| match f {
            Frame::Msg(b) => b,
            _ => unreachable!(),
        })
        .collect()
}

/// The keyframe requests peer `p` got: (publisher, person).
fn requests(sim: &mut Sim, p: usize) -> Vec<(u16, u32)> {
    sim.take(p)
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::NeedsKeyframe(n) => Some((n.publisher, n.person)),
                _ => None,
            })
            .flatten()
        })
        .collect()
}

#[test]
fn pose_and_audio_reach_every_other_member_byte_for_byte() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("relay", Role::Member);
    let (a, _) = sim.member_of("relay", Role::Viewer);
    let (b, _) = sim.member_of("relay", Role::Member);
    let member = sim.peers[p].member;
    for q in [p, a, b] {
        sim.take(q);
    }
    let mut poses = Poses::new(3);
    let sent: Vec<Vec<u8>> = (0..6)
        .map(|k| match k {
            2 | 5 => audio(h, member, k),
            _ => poses.next(h, member),
        })
        .collect();
    for m in &sent {
        sim.send_bytes(p, m);
    }
    for q in [a, b] {
        let got: Vec<Vec<u8>> = sim
            .take(q)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Msg(b) if matches!(f_kind(&b), Kind::Pose | Kind::Audio) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(got, sent, "peer {q}: every message, in order, unchanged");
    }
    assert!(media(&mut sim, p, Kind::Pose).is_empty(), "no echo");
    let stats = sim.core.stats();
    assert_eq!(stats.delivered, 12);
    assert_eq!(stats.messages_in[0], 4);
    assert_eq!(stats.messages_in[1], 2);
    assert_eq!(stats.relay_latency.count(), 12);
}

fn f_kind(bytes: &[u8]) -> Kind {
    crate::proto::Packet::new_checked(bytes)
        .unwrap()
        .header()
        .kind
}

/// A receiver that does not read loses pose, oldest first, counted; audio and
/// control wait for it; once it accepts no bytes for `stuck_timeout_ms` while
/// output waits, it is closed.
#[test]
fn a_slow_receiver_loses_pose_oldest_first_keeps_control_then_is_closed_when_stuck() {
    let mut sim = Sim::dev(); // queue_depth 8, stuck_timeout 2 s
    let (p, h) = sim.member_of("slow", Role::Member);
    let (fast, _) = sim.member_of("slow", Role::Viewer);
    let (slow, _) = sim.member_of("slow", Role::Viewer);
    let member = sim.peers[p].member;
    for q in [p, fast, slow] {
        sim.take(q);
    }
    sim.peers[slow].window = 0;
    let mut poses = Poses::new(1); // every frame a keyframe
    let mut sent = Vec::new();
    for seq in 1..=2 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    for _ in 0..12 {
        let m = poses.next(h, member);
        sim.send_bytes(p, &m);
        sent.push(m);
    }
    // A control message for the slow receiver while it does not read.
    let (late, _) = sim.member_of("slow", Role::Viewer);
    let late_member = sim.peers[late].member;

    assert_eq!(
        media(&mut sim, fast, Kind::Pose),
        sent,
        "the fast one gets all"
    );
    let stats = sim.core.stats();
    assert_eq!(
        stats.drops_of(DropReason::SlowPose),
        6,
        "12 poses, 6 places"
    );
    assert_eq!(stats.drops_of(DropReason::SlowAudio), 0);
    assert!(sim.peers[slow].frames.is_empty());
    let room = sim.core.rooms().next().unwrap();
    assert_eq!((room.name, room.drops), ("slow", 6));

    // It reads again: control first, then both audio chunks and the newest poses.
    sim.peers[slow].window = usize::MAX;
    sim.pump();
    let frames = sim.take(slow);
    let joined = frames[0]
        .with(|m| matches!(m, Message::MemberJoined(j) if j.member.member == late_member))
        .unwrap();
    assert!(joined, "control kept, and first: {:?}", frames[0]);
    let audio_seqs: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind() == Some(Kind::Audio))
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(audio_seqs, [1, 2]);
    let got: Vec<Vec<u8>> = frames
        .into_iter()
        .filter(|f| f.kind() == Some(Kind::Pose))
        .map(|f| match f {
            Frame::Msg(b) => b,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(got, sent[6..], "the oldest went");

    // Stuck: output waits and no byte is taken for 2 s.
    sim.peers[slow].window = 0;
    sim.send_bytes(p, &poses.next(h, member));
    sim.advance(1_900);
    assert!(!sim.peers[slow].closed, "not before the stuck limit");
    sim.advance(200);
    assert!(sim.peers[slow].closed, "closed as stuck");
    assert_eq!(sim.core.stats().faults_of(Fault::SlowConsumer), 1);
    let left = sim.take(fast).iter().find_map(|f| {
        f.with(|m| match m {
            Message::MemberLeft(l) => Some((l.member, l.reason)),
            _ => None,
        })
        .flatten()
    });
    assert_eq!(left, Some((sim.peers[slow].member, LeaveReason::TimedOut)));
    assert!(!sim.peers[fast].closed && !sim.peers[p].closed);
}

/// Control is never dropped: a receiver whose control buffer fills is closed.
#[test]
fn a_receiver_that_lets_its_control_buffer_fill_is_closed() {
    let mut sim = Sim::new(HubConfig {
        control_buffer: 8_192,
        ..config()
    });
    let (w, _) = sim.member_of("ctrl", Role::Owner);
    let (s, _) = sim.member_of("ctrl", Role::Member);
    sim.peers[s].window = 0;
    let ping = {
        let h = crate::proto::Header::new(Kind::Ping, 0, sim.peers[s].member, 1, 0);
        let mut buf = vec![0u8; 64];
        let msg = Message::Ping(crate::proto::Ping { t0_us: 1 });
        let n = crate::proto::encode_control(&h, &msg, &mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    // Each ping's pong waits in the control buffer (a burst of 500 is allowed).
    let mut sent = 0;
    while !sim.peers[s].closed && sent < 480 {
        sim.send_bytes(s, &ping);
        sent += 1;
    }
    assert!(sim.peers[s].closed, "closed after {sent} unread pongs");
    assert!(sent > 100, "not before the buffer is full: {sent}");
    assert_eq!(sim.core.stats().faults_of(Fault::SlowConsumer), 1);
    assert_eq!(sim.core.stats().errors[14], 1, "counted as slow_consumer");
    let left = sim.take(w).iter().find_map(|f| {
        f.with(|m| match m {
            Message::MemberLeft(l) => Some(l.reason),
            _ => None,
        })
        .flatten()
    });
    assert_eq!(left, Some(LeaveReason::TimedOut));
}

/// A late joiner gets the publisher's cached keyframe first; the publisher is
/// asked for a fresh one; deltas are skipped for the joiner until it comes.
#[test]
fn a_late_joiner_gets_the_cached_keyframe_and_deltas_after_a_fresh_one() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("late", Role::Member);
    let (r, _) = sim.member_of("late", Role::Viewer);
    let member = sim.peers[p].member;
    let mut poses = Poses::new(1_000); // one keyframe, then deltas
    let first = poses.next(h, member);
    assert!(is_keyframe(&first));
    sim.send_bytes(p, &first);
    for _ in 0..3 {
        let d = poses.next(h, member);
        assert!(!is_keyframe(&d));
        sim.send_bytes(p, &d);
    }
    sim.take(p);
    sim.take(r);

    let (j, _) = sim.member_of("late", Role::Viewer);
    let got = media(&mut sim, j, Kind::Pose);
    assert_eq!(got, std::slice::from_ref(&first), "the cached keyframe");
    assert_eq!(
        requests(&mut sim, p),
        [(member, 0)],
        "a fresh one is asked for"
    );
    assert_eq!(sim.core.stats().keyframes_served, 1);

    // A delta: the old member gets it, the joiner cannot decode it.
    let d = poses.next(h, member);
    sim.send_bytes(p, &d);
    assert_eq!(media(&mut sim, r, Kind::Pose), std::slice::from_ref(&d));
    assert!(media(&mut sim, j, Kind::Pose).is_empty());
    assert_eq!(sim.core.stats().drops_of(DropReason::AwaitingKeyframe), 1);

    // The fresh keyframe, then deltas again, reach both.
    poses.encoder.force_keyframe();
    let k = poses.next(h, member);
    assert!(is_keyframe(&k));
    sim.send_bytes(p, &k);
    let d2 = poses.next(h, member);
    sim.send_bytes(p, &d2);
    assert_eq!(media(&mut sim, j, Kind::Pose), [k.clone(), d2.clone()]);
    assert_eq!(media(&mut sim, r, Kind::Pose), [k, d2]);
}

/// `needs_keyframe` is served from the cache when it can be and forwarded to
/// the publisher at most once per 100 ms.
#[test]
fn needs_keyframe_is_served_from_the_cache_and_forwarded_at_most_every_100_ms() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("ask", Role::Member);
    let (r, _) = sim.member_of("ask", Role::Viewer);
    let member = sim.peers[p].member;
    let mut poses = Poses::new(1_000);
    let key = poses.next(h, member);
    sim.send_bytes(p, &key);
    let d = poses.next(h, member);
    sim.send_bytes(p, &d);
    sim.take(p);
    sim.take(r);
    let ask = Message::NeedsKeyframe(NeedsKeyframe {
        publisher: member,
        person: 0,
    });

    // From the cache, at once; the publisher is asked for a fresh one.
    sim.send(r, h, &ask);
    assert_eq!(media(&mut sim, r, Kind::Pose), std::slice::from_ref(&key));
    assert_eq!(requests(&mut sim, p), [(member, 0)]);
    // Asking again within 100 ms reaches nobody.
    sim.advance(50);
    sim.send(r, h, &ask);
    assert!(requests(&mut sim, p).is_empty());
    assert!(media(&mut sim, r, Kind::Pose).is_empty(), "served once");
    // After 100 ms it is forwarded again.
    sim.advance(60);
    sim.send(r, h, &ask);
    assert_eq!(requests(&mut sim, p), [(member, 0)]);
    assert_eq!(sim.core.stats().keyframe_requests, 2);

    // Until the fresh keyframe, deltas are skipped.
    let d = poses.next(h, member);
    sim.send_bytes(p, &d);
    assert!(media(&mut sim, r, Kind::Pose).is_empty());
    poses.encoder.force_keyframe();
    let fresh = poses.next(h, member);
    sim.send_bytes(p, &fresh);
    assert_eq!(media(&mut sim, r, Kind::Pose), [fresh]);

    // Asking about someone not in the room, or from outside it, is refused.
    let (o, _) = sim.member_of("other", Role::Member);
    let stranger = sim.peers[o].member;
    sim.send(
        r,
        h,
        &Message::NeedsKeyframe(NeedsKeyframe {
            publisher: stranger,
            person: 0,
        }),
    );
    assert_eq!(sim.take_errors(r)[0].0, NO_SUCH_MEMBER);
    sim.send(o, h, &ask);
    assert_eq!(sim.take_errors(o)[0].0, NOT_MEMBER);
}

#[test]
fn audio_is_acknowledged_and_duplicates_are_dropped() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("audio", Role::Member);
    let (r, _) = sim.member_of("audio", Role::Viewer);
    let member = sim.peers[p].member;
    sim.take(p);
    for seq in 1..=3 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    assert_eq!(media(&mut sim, r, Kind::Audio).len(), 3);
    sim.advance(40);
    let acks: Vec<_> = sim.take(p).iter().filter_map(ack).collect();
    assert_eq!(
        acks,
        [(h, Kind::Audio as u8, 3)],
        "one ack per room per tick"
    );
    sim.advance(40);
    assert!(sim.take(p).iter().all(|f| ack(f).is_none()), "nothing new");

    // A replay is dropped, counted, and acknowledged again.
    sim.send_bytes(p, &audio(h, member, 2));
    assert!(media(&mut sim, r, Kind::Audio).is_empty());
    assert_eq!(sim.core.stats().drops_of(DropReason::DuplicateAudio), 1);
    sim.advance(40);
    let acks: Vec<_> = sim.take(p).iter().filter_map(ack).collect();
    assert_eq!(acks, [(h, Kind::Audio as u8, 3)]);
    sim.send_bytes(p, &audio(h, member, 4));
    let seqs: Vec<u32> = sim
        .take_kind(r, Kind::Audio)
        .iter()
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(seqs, [4]);
}

/// A hub shutting down closes each connection after the media already queued
/// for it: a receiver that was behind gets its queued audio, then the close
/// frame, last (nothing may follow a close frame). The publisher was told
/// those chunks were relayed; they are not lost behind the close.
#[test]
fn a_close_goes_after_the_media_queued_before_it() {
    let mut sim = Sim::dev();
    let (p, h) = sim.member_of("drain", Role::Member);
    let (r, _) = sim.member_of("drain", Role::Viewer);
    let member = sim.peers[p].member;
    sim.take(p);
    sim.take(r);
    sim.peers[r].window = 0;
    for seq in 1..=5 {
        sim.send_bytes(p, &audio(h, member, seq));
    }
    sim.core.handle_shutdown(sim.now);
    sim.pump();
    sim.peers[r].window = usize::MAX;
    sim.pump();
    let frames = sim.take(r);
    let seqs: Vec<u32> = frames
        .iter()
        .filter(|f| f.kind() == Some(Kind::Audio))
        .map(|f| f.header().unwrap().seq)
        .collect();
    assert_eq!(
        seqs,
        [1, 2, 3, 4, 5],
        "the queued audio is written: {frames:?}"
    );
    assert!(
        matches!(frames.last(), Some(Frame::Close(1001, _))),
        "the close frame comes last: {frames:?}"
    );
    assert!(sim.peers[r].shut, "then the write half is shut");
}
