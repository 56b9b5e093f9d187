//! The edge engine against the real hub over loopback sockets: a hub killed
//! mid-stream and started again on the same port (rooms restored, every audio
//! chunk delivered once and in order), the bandwidth limit, and the priority
//! order of drops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::engine::{EdgeEngine, EngineConfig, EngineHandle, EngineReport, Event, Priority};
use poselink::hub::HubConfig;
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};

type Engine = (EngineHandle, std::thread::JoinHandle<EngineReport>);

fn start(url: String, token: String, min_ms: u64, max_ms: u64) -> Engine {
    EdgeEngine::start(EngineConfig {
        hub: url,
        token,
        reconnect_min_ms: min_ms,
        reconnect_max_ms: max_ms,
        heartbeat_ms: 200,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn chunk(seq: u32, ts: u64) -> AudioChunk {
    let mut c = AudioChunk::silence(48_000, 1, 960);
    c.seq = seq;
    c.capture_ts_us = ts;
    // Noise, as live audio is: silence would compress to a few bytes.
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    for s in c.samples.iter_mut().take(960) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *s = x as i16;
    }
    c
}

/// What the receiver saw of a hub restart.
pub(crate) struct Outcome {
    pub(crate) seqs: Vec<u32>,
    pub(crate) gaps: Vec<u32>,
    pub(crate) restored_after: Duration,
    pub(crate) total: u32,
}

/// Audio at 50 chunks/s through a hub restart; the receiver plays out with
/// `playout_ms` (0: every chunk as it comes).
pub(crate) fn restart_scenario(playout_ms: u64, tls: Option<&TlsFiles>) -> Outcome {
    let mut cfg = HubConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..secured()
    };
    if let Some(files) = tls {
        cfg = files.on(cfg);
    }
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let ca_file = tls.and_then(TlsFiles::ca);
    let hub = TestHub::start(cfg.clone());
    let hub_addr = hub.addr;
    let open = Arc::new(AtomicBool::new(true));
    let via = forwarder(hub_addr, Arc::clone(&open));
    let grant = [("stage", Role::Member, true)];
    let (a, ta) = EdgeEngine::start(EngineConfig {
        hub: format!("{scheme}://{via}/"),
        ca_file: ca_file.clone(),
        token: token("board-a", &grant, 600),
        reconnect_min_ms: 100,
        reconnect_max_ms: 400,
        heartbeat_ms: 200,
        ..EngineConfig::default()
    })
    .unwrap();
    let (b, tb) = EdgeEngine::start(EngineConfig {
        hub: format!("{scheme}://{}/", hub.addr),
        ca_file,
        token: token("viewer-b", &grant, 600),
        reconnect_min_ms: 20,
        reconnect_max_ms: 50,
        heartbeat_ms: 200,
        playout_delay_ms: playout_ms,
        ..EngineConfig::default()
    })
    .unwrap();
    let ra = a.join_room("stage", Role::Member).unwrap();
    b.join_room("stage", Role::Viewer).unwrap();

    // Audio at 50 chunks/s from a publisher thread, through the restart.
    let total = 150u32;
    let publisher = {
        let a = a.clone();
        std::thread::spawn(move || {
            let clock = MonotonicClock::new();
            for seq in 1..=total {
                a.send_audio(&chunk(seq, clock.now_us()), ra, Priority::NORMAL)
                    .unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut seqs: Vec<u32> = Vec::new();
    let mut gaps: Vec<u32> = Vec::new();
    let take = |e: Option<Event>, seqs: &mut Vec<u32>, gaps: &mut Vec<u32>| -> Option<Event> {
        match e {
            Some(Event::Audio { chunk, .. }) => {
                seqs.push(chunk.seq);
                None
            }
            Some(Event::AudioGap { seq, .. }) => {
                gaps.push(seq);
                None
            }
            other => other,
        }
    };
    let until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < until {
        take(
            b.wait_event(Duration::from_millis(20)),
            &mut seqs,
            &mut gaps,
        );
    }
    assert!(seqs.len() > 30, "audio flowed before the restart");
    // Kill the hub, hold the publisher's way back shut, start a new hub on the
    // same port.
    open.store(false, Ordering::Release);
    hub.stop();
    std::thread::sleep(Duration::from_millis(300));
    let hub2 = TestHub::start(HubConfig {
        listen: hub_addr,
        ..cfg
    });
    // The receiver is back in the room first, then the publisher may reconnect.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "the receiver never restored its room"
        );
        if let Some(Event::RoomRestored { .. }) = take(
            b.wait_event(Duration::from_millis(50)),
            &mut seqs,
            &mut gaps,
        ) {
            break;
        }
    }
    open.store(true, Ordering::Release);
    let back = Instant::now();
    let mut restored_after = None;
    let mut a_events = Vec::new();
    // Collect from both sides until every chunk arrived (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while seqs.len() + gaps.len() < total as usize && Instant::now() < deadline {
        while let Some(e) = a.poll_event() {
            if matches!(e, Event::RoomRestored { .. }) && restored_after.is_none() {
                restored_after = Some(back.elapsed());
            }
            a_events.push(format!("{e:?}"));
        }
        take(
            b.wait_event(Duration::from_millis(20)),
            &mut seqs,
            &mut gaps,
        );
    }
    publisher.join().unwrap();
    while let Some(e) = a.poll_event() {
        if matches!(e, Event::RoomRestored { .. }) && restored_after.is_none() {
            restored_after = Some(back.elapsed());
        }
    }
    let restored_after = restored_after.expect("the publisher's room was restored");
    let m = a.metrics();
    assert!(m.reconnects >= 1, "{a_events:?}");
    a.shutdown();
    b.shutdown();
    ta.join().unwrap();
    tb.join().unwrap();
    drop(hub2);
    Outcome {
        seqs,
        gaps,
        restored_after,
        total,
    }
}

/// The publisher's room restored within a second of the hub's return, and
/// every chunk, before, across and after the restart, delivered once, in order.
pub(crate) fn restored_and_exactly_once(o: &Outcome) {
    assert!(
        o.restored_after < Duration::from_secs(1),
        "restored after {:?}",
        o.restored_after
    );
    assert_eq!(
        o.seqs,
        (1..=o.total).collect::<Vec<_>>(),
        "every chunk once, in order"
    );
    assert!(o.gaps.is_empty());
}

#[test]
fn a_hub_restart_restores_rooms_and_loses_no_audio() {
    restored_and_exactly_once(&restart_scenario(0, None));
}

#[test]
fn real_time_playout_reports_what_the_restart_made_late_and_catches_up() {
    let o = restart_scenario(60, None);
    assert!(
        o.restored_after < Duration::from_secs(1),
        "restored after {:?}",
        o.restored_after
    );
    // Played in order, each once; what is not played was lost to the outage
    // (reported as gaps where the buffer could be sure, dropped as late where it
    // arrived after its play-out time).
    assert!(
        o.gaps.iter().all(|g| !o.seqs.contains(g)),
        "a gap was also played"
    );
    assert!(o.seqs.windows(2).all(|w| w[0] < w[1]), "played in order");
    // The outage costs at most one stretch of the stream (under a second), and
    // playback catches up: the last second plays whole.
    let lost = o.total as usize - o.seqs.len();
    assert!(lost <= 50, "{lost} chunks lost; gaps {:?}", o.gaps);
    let tail: Vec<u32> = (o.total - 49..=o.total).collect();
    assert!(
        tail.iter().all(|s| o.seqs.contains(s)),
        "the last second plays whole: gaps {:?}",
        o.gaps
    );
}

/// Synthetic pose frames stamped with the monotonic clock.
struct Poses {
    src: SyntheticPose,
    sample: PoseSample,
    seq: u32,
    clock: MonotonicClock,
}

impl Poses {
    fn new() -> Poses {
        Poses {
            src: SyntheticPose::new(SyntheticConfig::default()),
            sample: PoseSample::zeroed(),
            seq: 0,
            clock: MonotonicClock::new(),
        }
    }

    fn next(&mut self) -> PoseFrame {
        self.src.next_pose(&mut self.sample).unwrap();
        self.seq += 1;
        let mut f =
            PoseFrame::from_arrays(self.seq, 0, self.clock.now_us(), &self.sample.landmarks);
        f.clamp_to_range();
        f
    }
}

#[test]
fn the_bandwidth_limit_holds_and_thins_pose_evenly() {
    let hub = TestHub::dev();
    let limit = 3_000u64; // bytes/s: about 40 % of what 60 fps needs
    let (a, ta) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        bandwidth_bytes_per_sec: limit,
        heartbeat_ms: 1000,
        ..EngineConfig::default()
    })
    .unwrap();
    let (b, tb) = start(hub.url(), String::new(), 100, 1000);
    let ra = a.join_room("thin", Role::Member).unwrap();
    b.join_room("thin", Role::Viewer).unwrap();
    let mut poses = Poses::new();
    // Warm up one second, then measure five.
    let period = Duration::from_micros(16_667);
    let run = |secs: u64, poses: &mut Poses| {
        let start = Instant::now();
        let mut next = start;
        while start.elapsed() < Duration::from_secs(secs) {
            a.send_pose(&poses.next(), ra, Priority::NORMAL).unwrap();
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    };
    run(1, &mut poses);
    while b.poll_event().is_some() {}
    let before = a.metrics().bytes_sent;
    let t0 = Instant::now();
    let clock = MonotonicClock::new();
    let receiver = {
        let b = b.clone();
        std::thread::spawn(move || {
            let mut arrivals = Vec::new();
            let mut ages = Vec::new();
            let end = Instant::now() + Duration::from_millis(5_100);
            while Instant::now() < end {
                if let Some(Event::Pose { frame, .. }) = b.wait_event(Duration::from_millis(20)) {
                    let now = clock.now_us();
                    arrivals.push(now);
                    ages.push(now.saturating_sub(frame.capture_ts_us));
                }
            }
            (arrivals, ages)
        })
    };
    run(5, &mut poses);
    let sent = a.metrics().bytes_sent - before;
    let elapsed = t0.elapsed().as_secs_f64();
    let (arrivals, mut ages) = receiver.join().unwrap();
    let rate = sent as f64 / elapsed;
    eprintln!(
        "sent {sent} bytes in {elapsed:.2} s = {rate:.0} B/s (limit {limit}); {} frames received",
        arrivals.len()
    );
    assert!(
        (rate - limit as f64).abs() <= 0.10 * limit as f64,
        "rate {rate:.0} B/s vs limit {limit}"
    );
    // Thinned, not stopped: a steady fraction of 300 frames arrives, evenly.
    assert!(
        arrivals.len() > 60 && arrivals.len() < 250,
        "{} frames",
        arrivals.len()
    );
    let gaps: Vec<u64> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<u64>() as f64 / gaps.len() as f64;
    let max = *gaps.iter().max().unwrap() as f64;
    assert!(
        max < 4.0 * mean,
        "even thinning: max gap {max} µs vs mean {mean:.0} µs"
    );
    // Queued pose data never got older than the 100 ms bound (plus the way).
    ages.sort_unstable();
    let p99 = ages[ages.len() * 99 / 100];
    assert!(p99 < 150_000, "p99 frame age {p99} µs");

    // The performance monitor saw the same thinning: the send rate near the
    // limit, pose frames superseded, heartbeat round trips as its latency.
    let report = a.performance_report().expect("the engine answers");
    let get = |k: &str| report.get(k).unwrap_or_else(|| panic!("{k} in {report:?}"));
    let out = get("bytes_out_per_s");
    assert!(
        (out - limit as f64).abs() <= 0.2 * limit as f64,
        "monitor: {out:.0} B/s out vs limit {limit}"
    );
    let fps = get("fps");
    assert!(fps > 5.0 && fps < 55.0, "thinned fps {fps}");
    assert!(get("latency_p99_ms") < 250.0, "{report:?}");
    let json: serde_json::Value = serde_json::from_str(&report.json).unwrap();
    assert!(
        json["reliability"]["drops_by_kind"]["superseded"]
            .as_f64()
            .is_some_and(|n| n > 0.0),
        "{json}"
    );
    assert!(json["latency"]["count"].as_f64().unwrap() >= 2.0, "{json}");

    a.shutdown();
    b.shutdown();
    let m = ta.join().unwrap().metrics;
    tb.join().unwrap();
    // Every frame handed over is accounted for: sent, or dropped for a reason.
    let dropped = m.drops_ring
        + m.drops_superseded
        + m.drops_stale
        + m.drops_evicted
        + m.drops_refused
        + m.drops_no_room;
    assert_eq!(m.poses_submitted, m.poses_sent + dropped, "{m:?}");
}

#[test]
fn a_full_queue_drops_the_lowest_priority_first() {
    let hub = TestHub::dev();
    let (a, ta) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        queue_capacity: 8,
        // Nothing leaves while the queue fills.
        bandwidth_bytes_per_sec: 1,
        ..EngineConfig::default()
    })
    .unwrap();
    let (b, tb) = start(hub.url(), String::new(), 100, 1000);
    let ra = a.join_room("prio", Role::Member).unwrap();
    b.join_room("prio", Role::Viewer).unwrap();
    // The bucket's burst (one largest frame) lets a first chunk out; after it,
    // nothing leaves while the queue fills.
    a.send_audio(&chunk(1, 20_000), ra, Priority::LOW).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.metrics().audio_sent < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for seq in 2..=9 {
        a.send_audio(&chunk(seq, seq as u64 * 20_000), ra, Priority::LOW)
            .unwrap();
    }
    for seq in 10..=17 {
        a.send_audio(&chunk(seq, seq as u64 * 20_000), ra, Priority::HIGH)
            .unwrap();
    }
    // Two low ones more: refused, every slot holds a higher priority.
    for seq in 18..=19 {
        a.send_audio(&chunk(seq, seq as u64 * 20_000), ra, Priority::LOW)
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.metrics().drops_evicted + a.metrics().drops_refused < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = a.metrics();
    assert_eq!((m.drops_evicted, m.drops_refused), (8, 2), "{m:?}");
    a.set_bandwidth_limit(0);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < 9 && Instant::now() < deadline {
        if let Some(Event::Audio { chunk, .. }) = b.wait_event(Duration::from_millis(50)) {
            got.push(chunk.seq);
        }
    }
    let mut want = vec![1];
    want.extend(10..=17);
    assert_eq!(
        got, want,
        "the first chunk, then the high-priority ones, in order"
    );
    a.shutdown();
    b.shutdown();
    ta.join().unwrap();
    tb.join().unwrap();
}
