//! The soak: `poselink bench`'s standard load — R = 50 rooms of M = 4
//! members, each publishing pose at F = 60 fps and receiving the other three
//! — held for minutes against a hub run as its own process, with members
//! leaving and joining throughout, while the hub's resident memory is read
//! from `/proc/PID/status` once a second.
//!
//! The rooms are run as five groups of ten ([`GROUPS`]), each a load
//! generator ([`poselink::loadgen`]) that connects its 40 members (hello,
//! join), publishes for [`CYCLE`], waits for what is in flight and closes
//! every connection, then connects 40 new members to the same rooms. The
//! groups are started [`STAGGER`] apart, so every 3 s forty members leave and
//! forty join while the other 160 keep publishing; the hub serves 50 rooms
//! but for the moments a group is between its members.
//!
//! Warm-up is the first full churn cycle: it ends when every group has had
//! its first members leave and its second join (about 28 s). The hub's
//! tables are reserved at start-up and become resident as traffic first
//! touches them: per connection slot, as far as the most connections it has
//! held at once (freed slots are reused first), and at a churn the new
//! members may be accepted before the hub has seen the old ones go — so
//! during warm-up the test also opens
//! [`PEAK`] extra members at once for 2 s, more than the churn ever overlaps
//! (one group, 40), and the hub has held its high-water mark of connections
//! before the memory is judged. From the end of warm-up until the first group
//! stops, every sample of the hub's RSS must lie within 5 % of the first one
//! (the hub allocates its tables at start-up and reuses freed slots first,
//! so nothing should grow; a leak per connection or per room would). Every
//! group's every cycle, and the peak's run, must deliver exactly what it
//! owed: nothing lost, unsent or misrouted, no error and no connection lost.
//!
//! Each group's cycles start on a fixed grid ([`PERIOD`] apart), so the
//! groups' churns stay [`STAGGER`] apart however long the soak runs.
//!
//! It runs for 120 s by default (about two minutes of the test run);
//! `POSELINK_SOAK_SECS` sets the total for a longer soak (at least 60).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use poselink::loadgen::{LoadConfig, LoadGen};

use crate::common::HubProcess;

/// Groups of rooms, each churned as a whole.
const GROUPS: usize = 5;
/// Rooms per group (R = 50 in all).
const ROOMS: usize = 10;
/// Members per room (M).
const MEMBERS: usize = 4;
/// Pose frames per second per member (F).
const HZ: u32 = 60;
/// How long one group's members publish before they leave.
const CYCLE: Duration = Duration::from_secs(15);
/// Between the groups' starts (so between churns).
const STAGGER: Duration = Duration::from_secs(3);
/// Between the starts of one group's cycles: the cycle, and time to connect
/// and drain (well under a second here).
const PERIOD: Duration = Duration::from_secs(16);
/// Extra members opened at once during warm-up (30 rooms of 4), to take the
/// hub to more connections at once than the churn will.
const PEAK: usize = 120;
/// The soak's length without `POSELINK_SOAK_SECS`.
const DEFAULT_SECS: u64 = 120;
/// RSS may move this much from its first steady sample.
const RSS_TOLERANCE: f64 = 0.05;

/// One group's one cycle, as its load generator reported it.
struct Cycle {
    group: usize,
    cycle: usize,
    expected: u64,
    delivered: u64,
    problems: u64,
    first_problem: Option<String>,
    p99_us: u64,
}

#[test]
fn fifty_rooms_with_members_churning_hold_the_hubs_memory_flat_and_lose_nothing() {
    let _turn = crate::serial();
    let secs = match std::env::var("POSELINK_SOAK_SECS") {
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|&s| s >= 60)
            .unwrap_or_else(|| {
                panic!("POSELINK_SOAK_SECS must be a number of seconds, at least 60 (got {v:?})")
            }),
        Err(_) => DEFAULT_SECS,
    };
    let total = Duration::from_secs(secs);
    let hub = HubProcess::start(&[]);
    let start = Instant::now();
    let warmed = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (results_tx, results) = mpsc::channel();
    let groups: Vec<_> = (0..GROUPS)
        .map(|g| {
            let (warmed, ended, tx) = (Arc::clone(&warmed), Arc::clone(&ended), results_tx.clone());
            let addr = hub.addr;
            std::thread::spawn(move || {
                let out = run_group(g, addr, start, total, &warmed, &tx);
                ended.fetch_add(1, Ordering::AcqRel);
                out
            })
        })
        .collect();
    // The peak: once every group is publishing, PEAK more members for 2 s.
    let peak = {
        let (addr, tx) = (hub.addr, results_tx.clone());
        std::thread::spawn(move || {
            std::thread::sleep(STAGGER * (GROUPS as u32 - 1) + Duration::from_secs(1));
            let run = Duration::from_secs(2);
            run_cycle(GROUPS, 0, addr, PEAK / MEMBERS, run, &tx, || {})
        })
    };
    drop(results_tx);

    // One RSS sample a second: (seconds since the start, bytes, steady?).
    let mut samples: Vec<(f64, u64, bool)> = Vec::new();
    let limit = total + Duration::from_secs(60);
    for i in 0..limit.as_secs() {
        if ended.load(Ordering::Acquire) == GROUPS || start.elapsed() > limit {
            break;
        }
        let steady = warmed.load(Ordering::Acquire) == GROUPS && ended.load(Ordering::Acquire) == 0;
        let rss = hub.rss();
        let t = start.elapsed().as_secs_f64();
        samples.push((t, rss, steady));
        if i % 10 == 0 {
            println!(
                "soak t = {t:5.1} s  hub RSS {:6.2} MB  {}",
                rss as f64 / 1e6,
                if steady {
                    "steady"
                } else {
                    "warm-up or wind-down"
                }
            );
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(Duration::from_millis(
            (start.elapsed().as_millis() % 1000) as u64,
        )));
    }
    let mut group_errors: Vec<String> = groups
        .into_iter()
        .filter_map(|h| h.join().expect("a group thread").err())
        .collect();
    group_errors.extend(peak.join().expect("the peak's thread").err());
    let cycles: Vec<Cycle> = results.try_iter().collect();
    let log = hub.last_lines(20);
    drop(hub);

    for c in &cycles {
        let who = match c.group {
            GROUPS => "warm-up peak".to_string(),
            g => format!("group {g} cycle {}", c.cycle),
        };
        println!(
            "soak {who}: {} of {} delivered, {} problems, p99 {:.2} ms",
            c.delivered,
            c.expected,
            c.problems,
            c.p99_us as f64 / 1e3
        );
    }
    let steady: Vec<u64> = samples.iter().filter(|s| s.2).map(|s| s.1).collect();
    let base = steady.first().copied().unwrap_or(0);
    let (lo, hi) = (
        steady.iter().min().copied().unwrap_or(0),
        steady.iter().max().copied().unwrap_or(0),
    );
    let pct = |v: u64| (v as f64 / base.max(1) as f64 - 1.0) * 100.0;
    let (owed, got): (u64, u64) = cycles
        .iter()
        .fold((0, 0), |(o, d), c| (o + c.expected, d + c.delivered));
    println!(
        "soak: {secs} s, R = {} M = {MEMBERS} F = {HZ}, {} cycles of {} s ({} members left and joined, and a warm-up peak of {PEAK} more); \
         {got} of {owed} delivered; hub RSS at start of steady state {:.2} MB, over {} steady samples min {:.2} MB ({:+.2} %), max {:.2} MB ({:+.2} %); \
         peak over the run {:.2} MB",
        GROUPS * ROOMS,
        cycles.iter().filter(|c| c.group < GROUPS).count(),
        CYCLE.as_secs(),
        cycles
            .iter()
            .filter(|c| c.group < GROUPS && c.cycle > 0)
            .count()
            * ROOMS
            * MEMBERS,
        base as f64 / 1e6,
        steady.len(),
        lo as f64 / 1e6,
        pct(lo),
        hi as f64 / 1e6,
        pct(hi),
        samples.iter().map(|s| s.1).max().unwrap_or(0) as f64 / 1e6,
    );

    assert!(
        group_errors.is_empty(),
        "load generator errors: {group_errors:?}; hub log: {log:#?}"
    );
    assert!(
        cycles.iter().any(|c| c.group == GROUPS),
        "the warm-up's peak ran"
    );
    for g in 0..GROUPS {
        let n = cycles.iter().filter(|c| c.group == g).count();
        assert!(
            n >= 2,
            "group {g} ran {n} cycles: its members never left and came back"
        );
    }
    for c in &cycles {
        assert!(
            c.delivered == c.expected && c.problems == 0,
            "group {} cycle {} (group {GROUPS}: the peak): {} of {} delivered, {} problems (first: {:?}); hub log: {log:#?}",
            c.group,
            c.cycle,
            c.delivered,
            c.expected,
            c.problems,
            c.first_problem
        );
    }
    assert!(
        steady.len() >= 10,
        "at least 10 s of steady state to judge the memory by (got {}): give a longer POSELINK_SOAK_SECS",
        steady.len()
    );
    for &(t, rss, _) in samples.iter().filter(|s| s.2) {
        assert!(
            (pct(rss) / 100.0).abs() <= RSS_TOLERANCE,
            "the hub's RSS at {t:.0} s is {:.2} MB, {:+.2} % from {:.2} MB at the end of warm-up",
            rss as f64 / 1e6,
            pct(rss),
            base as f64 / 1e6
        );
    }
}

/// One group's cycles until the soak's end: connect its members, publish for
/// [`CYCLE`], close them, again, each cycle [`PERIOD`] after the last began.
/// The group counts itself `warmed` when its second members have joined.
fn run_group(
    g: usize,
    addr: std::net::SocketAddr,
    start: Instant,
    total: Duration,
    warmed: &AtomicUsize,
    results: &mpsc::Sender<Cycle>,
) -> Result<(), String> {
    let max_cycles = (total.as_secs() / PERIOD.as_secs()) as usize + 1;
    for cycle in 0..max_cycles {
        let at = STAGGER * g as u32 + PERIOD * cycle as u32;
        if at + PERIOD > total {
            break;
        }
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        run_cycle(g, cycle, addr, ROOMS, CYCLE, results, || {
            if cycle == 1 {
                warmed.fetch_add(1, Ordering::AcqRel);
            }
        })?;
    }
    Ok(())
}

/// One cycle: `rooms` rooms of [`MEMBERS`] connect (hello, join), publish for
/// `run`, and leave (their connections closed); `joined` is called once all
/// have joined; the figures go to `results`.
fn run_cycle(
    g: usize,
    cycle: usize,
    addr: std::net::SocketAddr,
    rooms: usize,
    run: Duration,
    results: &mpsc::Sender<Cycle>,
    joined: impl FnOnce(),
) -> Result<(), String> {
    let cfg = LoadConfig {
        rooms,
        members: MEMBERS,
        hz: HZ,
        duration: run,
        threads: 1,
        room_prefix: format!("soak-{g}-"),
        seed: (g * 1000 + cycle) as u64 + 1,
        ..LoadConfig::default()
    };
    let mut load = LoadGen::connect(addr, &cfg)
        .map_err(|e| format!("group {g} cycle {cycle}: connecting: {e}"))?;
    joined();
    let r = load
        .run()
        .map_err(|e| format!("group {g} cycle {cycle}: {e}"))?;
    drop(load); // every member leaves
    let _ = results.send(Cycle {
        group: g,
        cycle,
        expected: r.expected,
        delivered: r.delivered,
        problems: r.unsent + r.misrouted + r.hub_errors + r.connections_lost,
        first_problem: r.first_problem,
        p99_us: r.latency.quantile(0.99),
    });
    Ok(())
}
