//! The edge engine's costs: what `send_pose` costs the capture thread (criterion's
//! mean back to back, and p50/p99 of 20 000 individually timed calls 200 µs
//! apart), and, when a capture app sends 60 pose frames and 50 audio chunks a
//! second to a hub on loopback for 10 s, the pacing a real camera gives:
//!
//! - each `send_pose` and `send_audio` call timed on its own (p50/p99/max,
//!   after the first second, in which the engine learns the capture rate);
//! - the engine thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) per second and
//!   per pose frame;
//! - the latency from the call to the frame's arrival at a receiver: a viewer
//!   in the room (a client session over a blocking socket on a thread of its
//!   own, woken by the read) reads the monotonic clock when the frame or chunk
//!   comes off its socket; the sender stamps the capture time just before the
//!   call. It includes the engine's hand-off, encoding and write, the hub's
//!   relay and the two loopback hops: any delay the engine adds (a wake it
//!   waits for) shows here;
//! - how many of the calls woke the engine's loop with a system call (the
//!   `wakes` counter);
//! - the floor of such a hand-off on the machine it runs on: the same item
//!   pushed into a bare lock-free ring at 60 Hz with the hand-off's fence and
//!   flag read, another thread taking it.
//!
//! Run: `cargo bench --bench engine`

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use poselink::client::{Event as SessionEvent, Session, SessionConfig};
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

/// p50 / p99 / max of `v` (sorted here), as text in `unit`s of `scale`.
fn percentiles(v: &mut [u64], scale: f64, unit: &str) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    let n = v.len();
    let f = |x: u64| x as f64 / scale;
    format!(
        "p50 {:.1} / p99 {:.1} / max {:.1} {unit} (n = {n})",
        f(v[n / 2]),
        f(v[n * 99 / 100]),
        f(v[n - 1])
    )
}

/// A viewer in room "bench": a client session over a blocking socket on its
/// own thread, noting for every pose frame and audio chunk the µs from its
/// capture stamp to its read (one monotonic clock), until `stop`.
fn receiver(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(Vec<u64>, Vec<u64>)> {
    std::thread::spawn(move || {
        let clock = MonotonicClock::new();
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client::client(format!("ws://{addr}/"), tcp).unwrap();
        let mut tcp = ws.into_inner();
        tcp.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let cfg = SessionConfig {
            client: "bench-receiver".into(),
            ..SessionConfig::default()
        };
        let mut s = Session::new(cfg, clock.now_us());
        // The session asks for its transport first; it is the socket above.
        for _ in 0..100 {
            s.handle_timeout(clock.now_us());
            if s.poll_transport().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        s.handle_connected(clock.now_us());
        s.join(clock.now_us(), "bench", Role::Viewer).unwrap();
        let (mut poses, mut chunks) = (Vec::with_capacity(1 << 12), Vec::with_capacity(1 << 12));
        while !stop.load(Ordering::Relaxed) {
            loop {
                let out = s.poll_transmit();
                if out.is_empty() {
                    break;
                }
                let n = tcp.write(out).unwrap();
                s.handle_written(n);
            }
            match tcp.read(s.receive_buffer()) {
                Ok(0) => break,
                Ok(n) => {
                    let now = clock.now_us();
                    s.handle_received(now, n);
                    while let Some(ev) = s.poll_event() {
                        match ev {
                            SessionEvent::Pose { frame, .. } => {
                                poses.push(now.saturating_sub(frame.capture_ts_us))
                            }
                            SessionEvent::Audio { chunk, .. } => {
                                chunks.push(now.saturating_sub(chunk.capture_ts_us))
                            }
                            _ => {}
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("receiver: {e}"),
            }
            s.handle_timeout(clock.now_us());
            while s.poll_event().is_some() {}
        }
        (poses, chunks)
    })
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

    // 3. A camera's pacing: 60 pose frames and 50 audio chunks a second for
    //    10 s, with a viewer in the room: each call timed, the engine thread's
    //    CPU, and the latency from the call to the viewer's read.
    {
        let stop = Arc::new(AtomicBool::new(false));
        let viewer = receiver(addr, Arc::clone(&stop));
        let (e, t, room) = connect(addr);
        std::thread::sleep(Duration::from_millis(300)); // the viewer's join
        let clock = MonotonicClock::new();
        let start = Instant::now();
        let secs = 10;
        let (mut poses, mut chunks) = (0u32, 0u32);
        let pose_period = Duration::from_nanos(1_000_000_000 / 60);
        let audio_period = Duration::from_millis(20);
        let (mut next_pose, mut next_audio) = (start, start);
        let mut chunk = AudioChunk::silence(48_000, 1, 960);
        let mut x = 12345u32;
        let mut pose_ns: Vec<u64> = Vec::with_capacity(secs * 60 + 64);
        let mut audio_ns: Vec<u64> = Vec::with_capacity(secs * 50 + 64);
        // The calls of the first second are not in the percentiles: the
        // engine learns the capture rate from the first few frames.
        let warm_up = Duration::from_secs(1);
        let wakes0 = e.metrics().wakes;
        while start.elapsed() < Duration::from_secs(secs as u64) {
            let now = Instant::now();
            if now >= next_pose {
                let mut f = fs[poses as usize % fs.len()];
                poses += 1;
                f.seq = poses;
                let t0 = Instant::now();
                f.capture_ts_us = clock.now_us();
                e.send_pose(&f, room, Priority::NORMAL).unwrap();
                if start.elapsed() >= warm_up {
                    pose_ns.push(t0.elapsed().as_nanos() as u64);
                }
                next_pose += pose_period;
            }
            if now >= next_audio {
                chunks += 1;
                chunk.seq = chunks;
                for s in chunk.samples.iter_mut().take(960) {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *s = (x >> 20) as i16; // quiet noise, as a microphone gives
                }
                let t0 = Instant::now();
                chunk.capture_ts_us = clock.now_us();
                e.send_audio(&chunk, room, Priority::HIGH).unwrap();
                if start.elapsed() >= warm_up {
                    audio_ns.push(t0.elapsed().as_nanos() as u64);
                }
                next_audio += audio_period;
            }
            std::thread::sleep(
                next_pose
                    .min(next_audio)
                    .saturating_duration_since(Instant::now()),
            );
        }
        let wakes = e.metrics().wakes - wakes0;
        std::thread::sleep(Duration::from_millis(100)); // the last frames' way
        stop.store(true, Ordering::Relaxed);
        e.shutdown();
        let report = t.join().unwrap();
        let (mut pose_lat, mut audio_lat) = viewer.join().unwrap();
        let cpu = report.thread_cpu.unwrap_or_default();
        let m = report.metrics;
        println!(
            "engine at 60 fps pose + 50/s audio for {secs} s: {} poses and {} chunks sent, {:.1} kB/s; engine thread CPU {:.3} s = {:.2} ms per second = {:.1} µs per pose frame (audio included), {:.2} % of one core",
            m.poses_sent,
            m.audio_sent,
            m.bytes_sent as f64 / secs as f64 / 1000.0,
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e3 / secs as f64,
            cpu.as_secs_f64() * 1e6 / m.poses_sent.max(1) as f64,
            100.0 * cpu.as_secs_f64() / secs as f64
        );
        println!(
            "send_pose at 60 fps, one call at a time (after the first second): {}",
            percentiles(&mut pose_ns, 1e3, "µs")
        );
        println!(
            "send_audio at 50/s, one call at a time (after the first second): {}",
            percentiles(&mut audio_ns, 1e3, "µs")
        );
        println!(
            "system-call wakes of the engine's loop by these {} calls: {wakes}",
            poses + chunks
        );
        println!(
            "send_pose → viewer's read (60 fps): {}",
            percentiles(&mut pose_lat, 1.0, "µs")
        );
        println!(
            "send_audio → viewer's read (50/s): {}",
            percentiles(&mut audio_lat, 1.0, "µs")
        );
    }
    // 4. The floor of a hand-off on this machine: the same item pushed into
    //    a bare lock-free ring at 60 Hz, one at a time, with the fence and the
    //    flag read of the hand-off, and another thread taking it within a
    //    millisecond. What the call costs beyond it is the engine's.
    {
        struct Item {
            _frame: PoseFrame,
            _room: u16,
            _at: u64,
        }
        let q = Arc::new(crossbeam_queue::ArrayQueue::<Item>::new(64));
        let flag = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let consumer = {
            let (q, stop) = (Arc::clone(&q), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    while q.pop().is_some() {}
                    std::thread::sleep(Duration::from_micros(500));
                }
            })
        };
        let clock = MonotonicClock::new();
        let period = Duration::from_nanos(1_000_000_000 / 60);
        let mut next = Instant::now();
        let (mut fenced, mut bare): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
        // Alternately with and without the fence: what ordering the
        // hand-off costs, apart from the push.
        for k in 0..720 {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next += period;
            let t0 = Instant::now();
            let item = Item {
                _frame: fs[k % fs.len()],
                _room: 0,
                _at: clock.now_us(),
            };
            let _ = q.force_push(item);
            if k % 2 == 0 {
                std::sync::atomic::fence(Ordering::SeqCst);
            }
            black_box(flag.load(Ordering::SeqCst));
            let ns = t0.elapsed().as_nanos() as u64;
            match k {
                0..120 => {}
                _ if k % 2 == 0 => fenced.push(ns),
                _ => bare.push(ns),
            }
        }
        stop.store(true, Ordering::Relaxed);
        consumer.join().unwrap();
        println!(
            "the floor: a bare lock-free hand-off of the same item at 60 Hz (push, fence, flag read): {}",
            percentiles(&mut fenced, 1e3, "µs")
        );
        println!(
            "the floor without the fence (push, flag read): {}",
            percentiles(&mut bare, 1e3, "µs")
        );
    }

    hub.shutdown();
    hub_thread.join().unwrap().unwrap();
}
