//! The hub's relay cost and added latency on loopback, seen from inside: a hub on
//! its own thread of this process, and the pose-room workload of
//! `poselink::loadgen` (the generator `poselink bench` uses) on it — R rooms of M
//! members (default 10 × 4), every member publishing a pose frame at F Hz
//! (default 60) for D seconds (default 10) and receiving the other members'
//! frames. Prints one table:
//!
//! - hub CPU per delivered message: the hub thread's own CPU time
//!   (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution) over the messages it
//!   delivered;
//! - end-to-end latency (publisher's write → receiver's read, one monotonic
//!   clock, through two loopback sockets and the hub): p50 / p99 / max;
//! - the hub's own relay latency (read → written to the receiver's socket), from
//!   its `/metrics` histogram;
//! - loss (deliveries owed vs made) and the generator's own CPU time.
//!
//! `poselink bench` measures the same workload with the hub in a separate
//! process (the figures to compare with other systems); this bench adds what only
//! the hub's own counters know.
//!
//! Run: `cargo bench --bench relay` (or `-- --rooms 50 --members 4 --hz 60 --secs 10
//! [--audio] [--threads N]`).

use std::time::Duration;

use poselink::hub::{Hub, HubConfig};
use poselink::loadgen::{LoadConfig, LoadGen};

fn config() -> LoadConfig {
    let mut c = LoadConfig::default();
    let v: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < v.len() {
        let next = v.get(i + 1).and_then(|s| s.parse::<u64>().ok());
        match (v[i].as_str(), next) {
            ("--rooms", Some(n)) => c.rooms = n as usize,
            ("--members", Some(n)) => c.members = n as usize,
            ("--hz", Some(n)) => c.hz = n as u32,
            ("--secs", Some(n)) => c.duration = Duration::from_secs(n),
            ("--threads", Some(n)) => c.threads = n as usize,
            ("--audio", _) => {
                c.audio = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    c
}

fn main() {
    if std::env::args().any(|x| x == "--list" || x == "--test") {
        return; // `cargo test --benches` and `cargo bench -- --list` probe bench binaries
    }
    let c = config();
    let cfg = HubConfig {
        max_connections: c.connections() + 16,
        max_rooms: c.rooms + 16,
        max_members: c.members.max(2),
        rate_messages: 10_000,
        ..HubConfig::local_dev()
    };
    let (handle, addr, join) = Hub::spawn(cfg).unwrap();
    let mut load = LoadGen::connect(addr, &c).unwrap();
    let report = load.run().unwrap();
    drop(load);
    handle.shutdown();
    let hub = join.join().unwrap().unwrap();

    let l = &report.latency;
    let delivered = hub.stats.delivered;
    let cpu = hub.thread_cpu.unwrap_or_default();
    println!(
        "relay bench: {} rooms x {} members, {} Hz pose{}, {} s, hub on its own thread; load generator: {} thread(s)",
        c.rooms,
        c.members,
        c.hz,
        if c.audio { " + 50 Hz audio" } else { "" },
        c.duration.as_secs_f64(),
        report.threads
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| frames published (pose + audio) | {} + {} |",
        report.pose_sent, report.audio_sent
    );
    println!(
        "| deliveries expected / received | {} / {} (loss {:.4} %) |",
        report.expected,
        report.delivered,
        100.0 * report.loss()
    );
    println!(
        "| hub CPU per delivered message | {:.2} µs ({:.3} s CPU for {delivered} deliveries) |",
        cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64,
        cpu.as_secs_f64()
    );
    println!(
        "| end-to-end latency p50 / p99 / max | {} / {} / {} µs |",
        l.quantile(0.5),
        l.quantile(0.99),
        l.max()
    );
    let h = hub.stats.relay_latency.histogram();
    println!(
        "| hub relay latency (read → written to the receiver's socket) p50 / p99 / max | {} / {} / {} µs |",
        h.quantile(0.5),
        h.quantile(0.99),
        h.max()
    );
    println!("| load generator CPU | {:.3} s |", report.cpu.as_secs_f64());
    println!(
        "| drops (all reasons) | {} |",
        hub.stats.drops.iter().sum::<u64>()
    );
}
