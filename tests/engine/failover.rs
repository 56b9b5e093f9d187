//! Issue #15's failover on 127.0.0.1: two `poselink hub --dev` processes, A
//! and B; a publishing engine and a receiving engine both configured with
//! [A, B]. A is SIGKILLed mid-stream. The publisher must be publishing again
//! through B within 3 s (the receiver sees its poses again, from B), and the
//! receiver must get every audio chunk exactly once and in order: what was in
//! flight or unacknowledged when A died is replayed on B, and what the
//! receiver had already is dropped as a duplicate (known by stream id).
//!
//! The hubs share nothing (the hub cluster is another piece of work), so the
//! receiver must be in the room on B before the publisher replays there: it
//! retries after 5-10 ms, the publisher after 150-300 ms.

use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Event};
use poselink::proto::Role;

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    /// The audio chunks' sequence numbers, in order.
    seqs: Vec<u32>,
    /// Its session is open with hub B.
    on_b: bool,
    /// A pose frame came through hub B.
    posed_on_b: bool,
}

impl Seen {
    fn take(&mut self, e: Event) {
        match e {
            Event::Audio { chunk, .. } => {
                assert_eq!(
                    chunk.samples[0], chunk.seq as i16,
                    "the chunk's own samples"
                );
                self.seqs.push(chunk.seq);
            }
            Event::Connected { hub_index, .. } => self.on_b = hub_index == 1,
            Event::Pose { .. } if self.on_b => self.posed_on_b = true,
            _ => {}
        }
    }
}

#[test]
fn a_sigkilled_hub_fails_over_within_three_seconds_with_audio_exactly_once() {
    let mut a = HubProcess::start(&[]);
    let b = HubProcess::start(&[]);
    let urls = [format!("ws://{}/", a.addr), format!("ws://{}/", b.addr)];
    let (publisher, tp) = EdgeEngine::start(
        EngineConfig {
            reconnect_min_ms: 300,
            reconnect_max_ms: 1_000,
            ..EngineConfig::default()
        }
        .with_hubs(&urls),
    )
    .unwrap();
    let (receiver, tr) = EdgeEngine::start(
        EngineConfig {
            reconnect_min_ms: 10,
            reconnect_max_ms: 50,
            ..EngineConfig::default()
        }
        .with_hubs(&urls),
    )
    .unwrap();
    receiver.join_room("failover", Role::Viewer).unwrap();
    let room = publisher.join_room("failover", Role::Member).unwrap();
    assert_eq!(
        (publisher.metrics().hub_index, receiver.metrics().hub_index),
        (0, 0),
        "both start on the first hub"
    );

    let total = 250u32; // 5 s of audio, a pose frame with each chunk
    let sender = publish_every_20_ms(publisher.clone(), room, total, true, None);

    let mut seen = Seen::default();
    let until = Instant::now() + Duration::from_millis(1_000);
    while Instant::now() < until {
        if let Some(e) = receiver.wait_event(Duration::from_millis(10)) {
            seen.take(e);
        }
    }
    // SIGKILL: no close frame, no goodbye; the kernel resets the sockets.
    a.child.kill().unwrap();
    let killed = Instant::now();
    a.child.wait().unwrap();
    let deadline = killed + Duration::from_secs(10);
    while !seen.posed_on_b && Instant::now() < deadline {
        if let Some(e) = receiver.wait_event(Duration::from_millis(5)) {
            seen.take(e);
        }
    }
    let failover = killed.elapsed();
    assert!(
        seen.posed_on_b,
        "the receiver never saw the publisher's poses through B"
    );
    eprintln!("failover: publishing again through hub B {failover:?} after the SIGKILL of A");
    assert!(
        failover <= Duration::from_secs(3),
        "publishing again after {failover:?}; B's log: {:?}",
        b.last_lines(20)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.seqs.len() < total as usize && Instant::now() < deadline {
        if let Some(e) = receiver.wait_event(Duration::from_millis(20)) {
            seen.take(e);
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
        (mp.failovers, mp.hub_index, mr.failovers, mr.hub_index),
        (1, 1, 1, 1),
        "both moved to B once"
    );
    assert_eq!(mp.audio_lost, 0, "{mp:?}");
    assert_eq!(mr.audio_gaps, 0, "{mr:?}");
    assert!(
        mr.audio_duplicates <= mp.audio_replayed,
        "duplicates removed are replays: {} of {}",
        mr.audio_duplicates,
        mp.audio_replayed
    );
}
