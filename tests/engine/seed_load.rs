//! The seed's performance acceptance test, for the Rust engine (the Python
//! package asserts the same in `python/tests/test_seed_plan.py`): 1 000 pose
//! sends (at 400 Hz, with a 20 ms audio chunk every eighth) cost under 30 % of
//! a core — the app's thread and the engine's together, CPU time over wall
//! time — and grow the process's memory by under 100 MB. Run with
//! `--nocapture` to see the figures.

use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, Priority};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::clock::thread_cpu_us;
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    poselink_hal::stats::parse_kb_field(&status, "VmRSS").unwrap() / 1024
}

#[test]
fn a_thousand_sends_cost_under_30_percent_cpu_and_100_mb() {
    let Some(_) = thread_cpu_us() else {
        eprintln!("this platform does not report thread CPU time; nothing to measure");
        return;
    };
    let hub = TestHub::dev();
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("load", Role::Member).unwrap();
    let clock = MonotonicClock::new();
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut sample = PoseSample::zeroed();
    let mut send = |i: u32| {
        src.next_pose(&mut sample).unwrap();
        let mut f = PoseFrame::from_arrays(i + 1, 0, clock.now_us(), &sample.landmarks);
        f.clamp_to_range();
        engine.send_pose(&f, room, Priority::NORMAL).unwrap();
        if i.is_multiple_of(8) {
            let mut c = AudioChunk::silence(48_000, 1, 960);
            c.seq = i / 8 + 1;
            c.capture_ts_us = clock.now_us();
            engine.send_audio(&c, room, Priority::HIGH).unwrap();
        }
    };
    for i in 0..10 {
        send(i); // warm-up
    }
    std::thread::sleep(Duration::from_millis(250)); // the engine's CPU figure updates
    let rss0 = rss_kib();
    let engine_cpu0 = engine.metrics().thread_cpu_us;
    let app_cpu0 = thread_cpu_us().unwrap();
    let wall0 = Instant::now();
    for i in 10..1_010 {
        send(i);
        std::thread::sleep(Duration::from_micros(2_500));
    }
    let wall = wall0.elapsed();
    let app_cpu = thread_cpu_us().unwrap() - app_cpu0;
    let growth_kib = rss_kib().saturating_sub(rss0);
    let submitted = engine.metrics().poses_submitted;
    engine.shutdown();
    let report = thread.join().unwrap();
    let engine_cpu = report.thread_cpu.map_or(0, |d| d.as_micros() as u64) - engine_cpu0;
    let cpu_percent = (app_cpu + engine_cpu) as f64 / wall.as_micros() as f64 * 100.0;
    eprintln!(
        "1 000 sends at 400 Hz in {wall:?}: app thread {app_cpu} µs + engine thread {engine_cpu} µs of CPU = {cpu_percent:.1} % of a core; memory growth {:.2} MB",
        growth_kib as f64 / 1024.0
    );
    assert!(submitted >= 1_010);
    assert!(cpu_percent < 30.0, "CPU {cpu_percent:.1} %");
    assert!(growth_kib < 100 * 1024, "memory grew {growth_kib} KiB");
}
