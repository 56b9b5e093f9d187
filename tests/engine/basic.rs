//! The edge engine against the real hub over loopback: join, publish pose and
//! audio from one engine, receive them as events in another.

use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Event, Priority};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

fn engine(
    hub: &TestHub,
) -> (
    poselink::engine::EngineHandle,
    std::thread::JoinHandle<poselink::engine::EngineReport>,
) {
    EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ..EngineConfig::default()
    })
    .unwrap()
}

#[test]
fn pose_and_audio_flow_from_one_engine_to_another() {
    let hub = TestHub::dev();
    let (a, ta) = engine(&hub);
    // The receiver plays out through the aligner (60 ms): pose and audio come out
    // in capture-time order.
    let (b, tb) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        playout_delay_ms: 60,
        ..EngineConfig::default()
    })
    .unwrap();
    let ra = a.join_room("flow", Role::Member).expect("a joins");
    let rb = b.join_room("flow", Role::Viewer).expect("b joins");
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut s = PoseSample::zeroed();
    // Capture times from the monotonic clock, as a camera loop stamps them (the
    // receiver plays media out on a timeline built from them).
    let clock = MonotonicClock::new();
    for i in 0..30u32 {
        src.next_pose(&mut s).unwrap();
        let ts = clock.now_us();
        let mut f = PoseFrame::from_arrays(i + 1, 0, ts, &s.landmarks);
        f.clamp_to_range();
        a.send_pose(&f, ra, Priority::NORMAL).unwrap();
        let mut c = AudioChunk::silence(48_000, 1, 960);
        c.seq = i + 1;
        c.capture_ts_us = ts;
        a.send_audio(&c, ra, Priority::HIGH).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut poses, mut audio) = (0, 0);
    let mut last_ts = 0;
    // A pose frame the engine's loop has not sent when a newer one comes is
    // replaced by it (the newest pose wins; counted as superseded): on a slow
    // machine (the aarch64 build runs this under qemu) a few may be. Every
    // frame sent must arrive, and every audio chunk.
    let owed = || 30 - a.metrics().drops_superseded as usize;
    while (poses < owed() || audio < 30) && Instant::now() < deadline {
        let ts = match b.wait_event(Duration::from_millis(100)) {
            Some(Event::Pose { room, frame, .. }) => {
                assert_eq!(room, rb);
                poses += 1;
                frame.capture_ts_us
            }
            Some(Event::Audio { chunk, .. }) => {
                audio += 1;
                assert_eq!(chunk.seq, audio);
                chunk.capture_ts_us
            }
            Some(Event::AudioGap { seq, .. }) => panic!("audio chunk {seq} lost on loopback"),
            _ => continue,
        };
        assert!(ts >= last_ts, "released in capture-time order");
        last_ts = ts;
    }
    assert_eq!(
        (poses, audio),
        (owed(), 30),
        "metrics a: {:?}\nb: {:?}",
        a.metrics(),
        b.metrics()
    );
    assert!(poses >= 20, "at most a third superseded: {:?}", a.metrics());
    a.shutdown();
    b.shutdown();
    let ra = ta.join().unwrap();
    tb.join().unwrap();
    assert_eq!(
        ra.metrics.poses_sent + ra.metrics.drops_superseded,
        30,
        "every frame sent or superseded"
    );
    assert_eq!(ra.metrics.poses_sent as usize, poses);
    assert_eq!(ra.metrics.audio_sent, 30);
}

#[test]
fn shutdown_flushes_what_was_promised() {
    let hub = TestHub::dev();
    let (a, ta) = engine(&hub);
    let (b, tb) = engine(&hub);
    let ra = a.join_room("flush", Role::Member).unwrap();
    b.join_room("flush", Role::Viewer).unwrap();
    for seq in 1..=50u32 {
        let mut c = AudioChunk::silence(48_000, 1, 960);
        c.seq = seq;
        c.capture_ts_us = seq as u64 * 20_000;
        a.send_audio(&c, ra, Priority::NORMAL).unwrap();
    }
    // At once: what is in the rings and the queue still goes, and the engine
    // waits for the hub's acknowledgement of the audio before closing.
    a.shutdown();
    let report = ta.join().unwrap();
    assert_eq!(report.metrics.audio_sent, 50);
    assert!(
        a.send_audio(&AudioChunk::silence(48_000, 1, 960), ra, Priority::NORMAL)
            .is_err()
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 50 && Instant::now() < deadline {
        if let Some(Event::Audio { chunk, .. }) = b.wait_event(Duration::from_millis(50)) {
            got.push(chunk.seq);
        }
    }
    assert_eq!(got, (1..=50).collect::<Vec<_>>());
    b.shutdown();
    tb.join().unwrap();
}
