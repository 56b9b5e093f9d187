//! Issue #15's failover in a cluster, on 127.0.0.1: a `nats-server` and two
//! `poselink hub --cluster` processes, A and B. A publishing engine
//! configured with [A, B] is on A; a receiving engine is on B only and hears
//! it across the cluster. A is SIGKILLed mid-stream: the publisher must be
//! publishing again through B within 3 s (the receiver gets poses captured
//! after the kill), every audio chunk must reach the receiver exactly once
//! and in order (what was in flight when A died is replayed on B; what the
//! receiver had is known by stream id and dropped), and B must drop A's
//! members after the node timeout (`member_left`, `timed_out`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Event};
use poselink::proto::{LeaveReason, Role};

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// The audio chunks' sequence numbers, in order.
    seqs: Vec<u32>,
    /// Members that left, and why.
    left: Vec<(u16, LeaveReason)>,
}

impl Seen {
    /// Notes `e`; true for a pose frame of a sequence number above `after`.
    fn take(&mut self, e: Event, after: u32) -> bool {
        match e {
            Event::Audio { chunk, .. } => {
                assert_eq!(
                    chunk.samples[0], chunk.seq as i16,
                    "the chunk's own samples"
                );
                self.seqs.push(chunk.seq);
            }
            Event::Pose { frame, .. } => return frame.seq > after,
            Event::MemberLeft { member, reason, .. } => self.left.push((member, reason)),
            _ => {}
        }
        false
    }
}

#[test]
fn a_board_whose_hub_is_killed_publishes_through_another_hub_of_the_cluster() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut a = HubProcess::start(&["--cluster", &url, "--node", "a"]);
    let b = HubProcess::start(&["--cluster", &url, "--node", "b"]);
    let (ua, ub) = (format!("ws://{}/", a.addr), format!("ws://{}/", b.addr));
    let (receiver, tr) = EdgeEngine::start(EngineConfig {
        hub: ub.clone(),
        ..EngineConfig::default()
    })
    .unwrap();
    receiver.join_room("cluster", Role::Viewer).unwrap();
    let (publisher, tp) = EdgeEngine::start(
        EngineConfig {
            reconnect_min_ms: 50,
            reconnect_max_ms: 250,
            ..EngineConfig::default()
        }
        .with_hubs(&[ua, ub]),
    )
    .unwrap();
    let room = publisher.join_room("cluster", Role::Member).unwrap();
    // The receiver hears of the publisher across the cluster before it sends.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut remote = None;
    while remote.is_none() && Instant::now() < deadline {
        if let Some(Event::MemberJoined { member, .. }) =
            receiver.wait_event(Duration::from_millis(20))
        {
            remote = Some(member.member);
        }
    }
    let remote = remote.expect("the receiver on B heard of the publisher on A");

    let total = 250u32; // 5 s of audio, a pose frame with each chunk
    let sent = Arc::new(AtomicU32::new(0));
    let sender = publish_every_20_ms(
        publisher.clone(),
        room,
        total,
        true,
        Some(Arc::clone(&sent)),
    );
    let mut seen = Seen::default();
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        if let Some(e) = receiver.wait_event(Duration::from_millis(10)) {
            seen.take(e, u32::MAX);
        }
    }
    // SIGKILL: no close frame, no goodbye to the broker either.
    a.child.kill().unwrap();
    let killed = Instant::now();
    let at_kill = sent.load(Ordering::Acquire);
    a.child.wait().unwrap();
    let deadline = killed + Duration::from_secs(10);
    let mut back = None;
    while back.is_none() && Instant::now() < deadline {
        // A pose captured after the kill came through B: the publisher is
        // publishing again.
        if let Some(e) = receiver.wait_event(Duration::from_millis(5))
            && seen.take(e, at_kill + 1)
        {
            back = Some(killed.elapsed());
        }
    }
    let back = back.unwrap_or_else(|| panic!("no pose after the kill; B: {:?}", b.last_lines(20)));
    eprintln!("cluster failover: publishing again through hub B {back:?} after the SIGKILL of A");
    assert!(back <= Duration::from_secs(3), "{back:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while (seen.seqs.len() < total as usize || seen.left.is_empty()) && Instant::now() < deadline {
        if let Some(e) = receiver.wait_event(Duration::from_millis(20)) {
            seen.take(e, u32::MAX);
        }
    }
    sender.join().unwrap();
    let (mp, mr) = (publisher.metrics(), receiver.metrics());
    publisher.shutdown();
    receiver.shutdown();
    tp.join().unwrap();
    tr.join().unwrap();
    assert_eq!(
        seen.seqs,
        (1..=total).collect::<Vec<_>>(),
        "every chunk once, in order (publisher {mp:?}, receiver {mr:?})"
    );
    assert_eq!(
        (mp.failovers, mp.hub_index),
        (1, 1),
        "the publisher moved to B once"
    );
    assert_eq!(mp.audio_lost, 0, "{mp:?}");
    assert_eq!(
        seen.left,
        vec![(remote, LeaveReason::TimedOut)],
        "B dropped A's member after the node timeout"
    );
}
