//! The send and receive paths allocate nothing. After warm-up, 10 000
//! `send_pose` calls, their encoding in the engine's loop and their writing to
//! the hub's socket cost zero heap allocations; and 10 000 pose frames and
//! audio chunks received by another engine — read, decoded, handed to the app
//! through the events ring and taken with `poll_event` — cost zero too. Counted
//! over every thread of this process (the app's, the engines', and the
//! in-process hub's), so nothing can hide. Each runs over plain TCP and over
//! TLS (`wss://`: the engine's and the hub's record layers in the count). The
//! tests take turns (the counter is global).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::counting;
use poselink::engine::{EdgeEngine, EngineConfig, Event, Priority};
use poselink::hub::HubConfig;
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

#[test]
fn ten_thousand_send_pose_calls_allocate_nothing() {
    ten_thousand_send_pose_calls_allocate_nothing_over(false);
}

#[test]
fn ten_thousand_send_pose_calls_allocate_nothing_over_tls() {
    ten_thousand_send_pose_calls_allocate_nothing_over(true);
}

fn ten_thousand_send_pose_calls_allocate_nothing_over(tls: bool) {
    let _turn = counting::turn();
    // Made in this test's turn: another test may be counting every thread.
    let files = tls.then(|| TlsFiles::local("alloc-engine"));
    let tls = files.as_ref();
    let cfg = HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    };
    let hub = match tls {
        Some(files) => TestHub::start_tls(cfg, files),
        None => TestHub::start(cfg),
    };
    let ca_file = tls.and_then(TlsFiles::ca);
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ca_file: ca_file.clone(),
        heartbeat_ms: 200, // pings and pongs run during the measurement
        max_persons: 8,
        // A deep hand-off ring: at 5 000 calls a second the default 64 slots
        // fill in 13 ms, and a loaded machine can hold the loop's thread off
        // that long (the TLS run once lost 3 frames so); 4 096 slots take 0.8 s.
        pose_ring: 4096,
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("alloc", Role::Member).unwrap();
    let clock = MonotonicClock::new();
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut sample = PoseSample::zeroed();
    let mut seq = 0u32;
    let mut send = |n: u32| {
        for _ in 0..n {
            src.next_pose(&mut sample).unwrap();
            seq += 1;
            // Eight persons (eight encoders): a frame is replaced only if the loop
            // falls eight frames behind.
            let mut f = PoseFrame::from_arrays(seq, seq % 8, clock.now_us(), &sample.landmarks);
            f.clamp_to_range();
            engine.send_pose(&f, room, Priority::NORMAL).unwrap();
            // Paced so that the loop encodes every frame (no frame is replaced):
            // this measures the whole path, not the drop path.
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let wait_sent = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while {
            let m = engine.metrics();
            m.poses_sent + m.drops_superseded < n
        } && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(2_000);
    wait_sent(2_000);
    std::thread::sleep(Duration::from_millis(300));
    let before = engine.metrics();

    let counted_before = counting::allocations();
    counting::every_thread(true);
    send(10_000);
    wait_sent(before.poses_sent + before.drops_superseded + 10_000);
    std::thread::sleep(Duration::from_millis(300)); // pings, pongs, hub housekeeping
    counting::every_thread(false);
    let allocs = counting::allocations() - counted_before;

    let after = engine.metrics();
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while sending 10 000 pose frames"
    );
    let sent = after.poses_sent - before.poses_sent;
    let replaced = after.drops_superseded - before.drops_superseded;
    assert_eq!(
        sent + replaced,
        10_000,
        "every frame encoded and written, or replaced by a newer one: {after:?}"
    );
    assert!(
        replaced <= 100,
        "the measurement is of the send path, not the drop path: {after:?}"
    );
    assert_eq!(after.drops_ring + after.drops_stale, 0, "{after:?}");
    assert!(after.rtt_us > 0, "pings ran");
    engine.shutdown();
    thread.join().unwrap();
    assert_eq!(
        hub.metric("poselink_messages_in_total{kind=\"pose\"}"),
        after.poses_sent as f64
    );
}

/// The board's Opus audio: 3 000 chunks of 20 ms handed to `send_audio`,
/// gathered three to a 60 ms packet, coded by libopus, kept for replay and
/// written, cost zero allocations after warm-up. (libopus's own C allocations
/// are not seen by Rust's allocator; it makes its state in `opus_encoder_create`,
/// at start, and codes on the stack.)
#[cfg(feature = "opus")] // without it the engine sends PCM16
#[test]
fn three_thousand_opus_chunks_allocate_nothing() {
    let _turn = counting::turn();
    let hub = TestHub::start(HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    });
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        encoder: poselink::proto::EncoderConfig {
            audio: poselink::proto::AudioEncoding::board(),
            ..poselink::proto::EncoderConfig::default()
        },
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("alloc-opus", Role::Member).unwrap();
    let clock = MonotonicClock::new();
    let mut chunk = AudioChunk::silence(48_000, 1, 960);
    let mut seq = 0u32;
    let mut send = |n: u32| {
        for _ in 0..n {
            seq += 1;
            chunk.seq = seq;
            chunk.capture_ts_us = clock.now_us();
            for (i, x) in chunk.samples.iter_mut().enumerate() {
                *x = (((seq as usize * 960 + i) as f32 * 0.03).sin() * 8_000.0) as i16;
            }
            engine.send_audio(&chunk, room, Priority::HIGH).unwrap();
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    let wait_sent = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while engine.metrics().audio_sent < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    send(600);
    wait_sent(600);
    std::thread::sleep(Duration::from_millis(300));
    let before = engine.metrics();

    let counted_before = counting::allocations();
    counting::every_thread(true);
    send(3_000);
    wait_sent(before.audio_sent + 3_000);
    std::thread::sleep(Duration::from_millis(300));
    counting::every_thread(false);
    let allocs = counting::allocations() - counted_before;

    let after = engine.metrics();
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while sending 3 000 Opus chunks"
    );
    assert_eq!(after.audio_sent - before.audio_sent, 3_000, "{after:?}");
    assert_eq!(after.audio_lost, 0, "{after:?}");
    engine.shutdown();
    thread.join().unwrap();
    // Chunks 1 ..= 3 600, three consecutive ones to a packet: 1 200 packets
    // reached the hub (the warm-up's last packet was full: no short one).
    assert_eq!(
        hub.metric("poselink_messages_in_total{kind=\"audio\"}"),
        1_200.0
    );
}

#[test]
fn ten_thousand_received_frames_and_chunks_allocate_nothing() {
    ten_thousand_received_frames_and_chunks_allocate_nothing_over(false);
}

#[test]
fn ten_thousand_received_frames_and_chunks_allocate_nothing_over_tls() {
    ten_thousand_received_frames_and_chunks_allocate_nothing_over(true);
}

fn ten_thousand_received_frames_and_chunks_allocate_nothing_over(tls: bool) {
    let _turn = counting::turn();
    // Made in this test's turn: another test may be counting every thread.
    let files = tls.then(|| TlsFiles::local("alloc-engine"));
    let tls = files.as_ref();
    let cfg = HubConfig {
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    };
    let hub = match tls {
        Some(files) => TestHub::start_tls(cfg, files),
        None => TestHub::start(cfg),
    };
    let ca_file = tls.and_then(TlsFiles::ca);
    let start = |playout_delay_ms| {
        EdgeEngine::start(EngineConfig {
            hub: hub.url(),
            ca_file: ca_file.clone(),
            heartbeat_ms: 200, // pings and pongs run during the measurement
            max_persons: 8,
            playout_delay_ms,
            ..EngineConfig::default()
        })
        .unwrap()
    };
    let (tx, tx_thread) = start(0);
    let (rx, rx_thread) = start(0);
    let room = tx.join_room("alloc-rx", Role::Member).unwrap();
    rx.join_room("alloc-rx", Role::Viewer).unwrap();
    let clock = MonotonicClock::new();
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut sample = PoseSample::zeroed();
    let (mut seq, mut audio_seq) = (0u32, 0u32);
    let mut received = (0u64, 0u64);
    // Four pose frames, then an audio chunk: 8 000 frames and 2 000 chunks in 10 000.
    let mut send_and_take = |n: u32, received: &mut (u64, u64)| {
        for i in 0..n {
            let ts = clock.now_us();
            if i % 5 == 4 {
                audio_seq += 1;
                let mut c = AudioChunk::silence(48_000, 1, 960);
                c.seq = audio_seq;
                c.capture_ts_us = ts;
                c.samples[0] = audio_seq as i16;
                tx.send_audio(&c, room, Priority::HIGH).unwrap();
            } else {
                src.next_pose(&mut sample).unwrap();
                seq += 1;
                // Eight persons (eight encoders): a frame is replaced only if
                // the sender's loop falls eight frames behind.
                let mut f = PoseFrame::from_arrays(seq, seq % 8, ts, &sample.landmarks);
                f.clamp_to_range();
                tx.send_pose(&f, room, Priority::NORMAL).unwrap();
            }
            while let Some(e) = rx.poll_event() {
                match e {
                    Event::Pose { frame, .. } => received.0 += u64::from(frame.seq > 0),
                    Event::Audio { chunk, .. } => received.1 += u64::from(chunk.seq > 0),
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    };
    let settle = |received: &mut (u64, u64), want: (u64, u64)| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while *received != want && Instant::now() < deadline {
            while let Some(e) = rx.poll_event() {
                match e {
                    Event::Pose { .. } => received.0 += 1,
                    Event::Audio { .. } => received.1 += 1,
                    _ => {}
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    // What the sender sent (a pose frame it replaced with a newer one never
    // leaves) is what must arrive.
    let sent = || {
        let m = tx.metrics();
        (m.poses_sent, m.audio_sent)
    };
    send_and_take(2_000, &mut received);
    std::thread::sleep(Duration::from_millis(100));
    settle(&mut received, sent());
    assert_eq!(received, sent(), "warm-up: everything sent arrived");
    std::thread::sleep(Duration::from_millis(300));
    let before = received;

    let counted_before = counting::allocations();
    counting::every_thread(true);
    send_and_take(10_000, &mut received);
    std::thread::sleep(Duration::from_millis(100));
    settle(&mut received, sent());
    std::thread::sleep(Duration::from_millis(300)); // pings, pongs, acknowledgements
    counting::every_thread(false);
    let allocs = counting::allocations() - counted_before;

    let m = rx.metrics();
    let got = (received.0 - before.0, received.1 - before.1);
    assert_eq!(received, sent(), "everything sent arrived: {m:?}");
    assert!(
        got.0 >= 7_900 && got.1 == 2_000,
        "the receive path was measured (8 000 pose frames, 2 000 chunks): {got:?}, sender {:?}",
        tx.metrics()
    );
    assert_eq!(
        allocs, 0,
        "{allocs} allocations while receiving {} pose frames and {} audio chunks",
        got.0, got.1
    );
    assert_eq!((m.poses_received, m.audio_received), received);
    assert_eq!(m.events_dropped, 0);
    tx.shutdown();
    rx.shutdown();
    tx_thread.join().unwrap();
    rx_thread.join().unwrap();
}
