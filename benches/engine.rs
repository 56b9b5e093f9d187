//! The edge engine's costs: what `send_pose` costs the capture thread (criterion's
//! mean, and p50/p99 of 200 000 individually timed calls), and what the engine's
//! thread spends per frame when a capture app sends 60 pose frames and 50 audio
//! chunks a second to a hub on loopback (its thread CPU time over 10 s, from
//! `CLOCK_THREAD_CPUTIME_ID`, divided by the frames).
//!
//! Run: `cargo bench --bench engine`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use poselink::engine::{EdgeEngine, EngineConfig, EngineHandle, Priority};
use poselink::hub::{Hub, HubConfig};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

fn frames(n: usize) -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut s = PoseSample::zeroed();
    (0..n)
        .map(|i| {
            src.next_pose(&mut s).unwrap();
            let mut f = PoseFrame::from_arrays(i as u32 + 1, 0, s.capture_ts_us, &s.landmarks);
            f.clamp_to_range();
            f
        })
        .collect()
}

fn connect(
    addr: std::net::SocketAddr,
) -> (
    EngineHandle,
    std::thread::JoinHandle<poselink::engine::EngineReport>,
    poselink::engine::RoomId,
) {
    let (e, t) = EdgeEngine::start(EngineConfig {
        hub: format!("ws://{addr}/"),
        ..EngineConfig::default()
    })
    .unwrap();
    let room = e.join_room("bench", Role::Member).unwrap();
    (e, t, room)
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let cfg = HubConfig {
        rate_messages: 10_000_000,
        burst_messages: 1_000_000,
        ..HubConfig::local_dev()
    };
    let (hub, addr, hub_thread) = Hub::spawn(cfg).unwrap();
    let fs = frames(300);

    // 1. The call, back to back (criterion's mean).
    {
        let (e, t, room) = connect(addr);
        let mut c = Criterion::default()
            .configure_from_args()
            .measurement_time(Duration::from_secs(3));
        let mut i = 0;
        c.bench_function("send_pose (back to back)", |b| {
            b.iter(|| {
                i = (i + 1) % fs.len();
                e.send_pose(black_box(&fs[i]), room, Priority::NORMAL)
                    .unwrap();
            })
        });
        c.final_summary();
        e.shutdown();
        t.join().unwrap();
    }

    // 2. The call, timed one by one at 1 kHz-ish pacing (the loop drains between
    //    calls, as at a camera's rate).
    {
        let (e, t, room) = connect(addr);
        let n = 20_000;
        let mut ns: Vec<u64> = Vec::with_capacity(n);
        for k in 0..n {
            let f = &fs[k % fs.len()];
            let t0 = Instant::now();
            e.send_pose(f, room, Priority::NORMAL).unwrap();
            ns.push(t0.elapsed().as_nanos() as u64);
            std::thread::sleep(Duration::from_micros(200));
        }
        ns.sort_unstable();
        println!(
            "send_pose, one call at a time ({n} calls, 200 µs apart): p50 {} ns, p99 {} ns, max {} ns",
            ns[n / 2],
            ns[n * 99 / 100],
            ns[n - 1]
        );
        e.shutdown();
        t.join().unwrap();
    }

    // 3. The engine's CPU per frame at 60 fps pose + 50 chunks/s audio, 10 s.
    {
        let (e, t, room) = connect(addr);
        let clock = MonotonicClock::new();
        let start = Instant::now();
        let secs = 10;
        let (mut poses, mut chunks) = (0u32, 0u32);
        let pose_period = Duration::from_nanos(1_000_000_000 / 60);
        let audio_period = Duration::from_millis(20);
        let (mut next_pose, mut next_audio) = (start, start);
        let mut chunk = AudioChunk::silence(48_000, 1, 960);
        let mut x = 12345u32;
        while start.elapsed() < Duration::from_secs(secs) {
            let now = Instant::now();
            if now >= next_pose {
                let mut f = fs[poses as usize % fs.len()];
                poses += 1;
                f.seq = poses;
                f.capture_ts_us = clock.now_us();
                e.send_pose(&f, room, Priority::NORMAL).unwrap();
                next_pose += pose_period;
            }
            if now >= next_audio {
                chunks += 1;
                chunk.seq = chunks;
                chunk.capture_ts_us = clock.now_us();
                for s in chunk.samples.iter_mut().take(960) {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *s = (x >> 20) as i16; // quiet noise, as a microphone gives
                }
                e.send_audio(&chunk, room, Priority::HIGH).unwrap();
                next_audio += audio_period;
            }
            std::thread::sleep(
                next_pose
                    .min(next_audio)
                    .saturating_duration_since(Instant::now()),
            );
        }
        e.shutdown();
        let report = t.join().unwrap();
        let cpu = report.thread_cpu.unwrap_or_default();
        let m = report.metrics;
        println!(
            "engine at 60 fps pose + 50/s audio for {secs} s: {} poses and {} chunks sent, {:.1} kB/s; engine thread CPU {:.3} s = {:.1} µs per pose frame (audio included), {:.2} % of one core",
            m.poses_sent,
            m.audio_sent,
            m.bytes_sent as f64 / secs as f64 / 1000.0,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / m.poses_sent.max(1) as f64,
            100.0 * cpu.as_secs_f64() / secs as f64
        );
    }
    hub.shutdown();
    hub_thread.join().unwrap().unwrap();
}
