//! `--sweep`: raises the room count along a ladder (a fresh hub per step), then
//! bisects between the last passing and the first failing step, and reports the
//! largest count the hub carries with no loss and p99 latency within the limit.

use std::fmt::Write as _;

use poselink::loadgen::{AUDIO_HZ, LoadConfig, MAX_CONNECTIONS};

use super::report::{grouped, json_string, note_problems, print_step};
use super::{BenchArgs, Target, run_once};
use crate::CliError;

/// The room counts a sweep tries before bisecting.
const LADDER: [usize; 25] = [
    10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000,
    4000, 5000, 6000, 8000, 10_000, 12_500, 15_000,
];

/// Rooms between the last passing and the first failing step at which the
/// bisection stops.
const SWEEP_RESOLUTION: usize = 10;

pub(super) fn sweep(args: &BenchArgs, base: &LoadConfig, target: &Target) -> Result<(), CliError> {
    let limit_us = (args.p99_limit_ms * 1000.0).round() as u64;
    let max_rooms = args.sweep_max.min(MAX_CONNECTIONS / base.members.max(1));
    if max_rooms == 0 {
        return Err(CliError::config("--sweep-max must be at least 1"));
    }
    let mut ladder: Vec<usize> = LADDER.iter().copied().filter(|&r| r < max_rooms).collect();
    ladder.push(max_rooms);
    if !args.json {
        println!(
            "poselink bench --sweep: rooms of {} members{}, pose {} Hz{}, {} s per step; a step passes with loss 0 and p99 ≤ {} ms",
            base.members,
            args.hubs.map_or(String::new(), |n| format!(
                " spread over {n} hubs in a cluster (fresh broker and hubs per step; hub CPU summed over them)"
            )),
            base.hz,
            if base.audio { " + audio 50 Hz" } else { "" },
            base.duration.as_secs_f64(),
            args.p99_limit_ms
        );
        println!();
        println!(
            "| rooms | connections | deliveries/s | loss | latency p50 / p99 / max (µs) | hub CPU (% of a core) | deliveries per hub CPU s (hub CPU per delivery ÷ floor) | load generator CPU (%) | step |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
    }
    // Each step's JSON object (with its verdict), in the order run.
    let mut steps: Vec<String> = Vec::new();
    let mut pass: Option<usize> = None;
    let mut fail: Option<usize> = None;
    let step = |rooms: usize, steps: &mut Vec<String>| -> bool {
        let cfg = LoadConfig {
            rooms,
            ..base.clone()
        };
        match run_once(&cfg, target) {
            Ok(mut run) => {
                run.measure_floor(target);
                let ok = run.passes(limit_us);
                if !args.json {
                    print_step(&run, ok);
                }
                note_problems(&run);
                let line = run.json();
                steps.push(format!("{},\"pass\":{ok}}}", &line[..line.len() - 1]));
                ok
            }
            Err(e) => {
                // A step that cannot even be set up is a failed step, not the
                // end of the sweep's report.
                if !args.json {
                    println!(
                        "| {rooms} | {} | — | — | — | — | — | — | FAIL: {} |",
                        cfg.connections(),
                        e.message
                    );
                }
                eprintln!("poselink: note: {rooms} rooms could not run: {}", e.message);
                steps.push(format!(
                    "{{\"system\":\"poselink\",\"rooms\":{rooms},\"error\":{},\"pass\":false}}",
                    json_string(&e.message)
                ));
                false
            }
        }
    };
    for &rooms in &ladder {
        if step(rooms, &mut steps) {
            pass = Some(rooms);
        } else {
            fail = Some(rooms);
            break;
        }
    }
    // Bisect between the last pass and the first failure, in whole tens of rooms.
    while let (Some(p), Some(f)) = (pass, fail) {
        if f - p <= SWEEP_RESOLUTION {
            break;
        }
        let mid = ((p + f) / 2).div_ceil(SWEEP_RESOLUTION) * SWEEP_RESOLUTION;
        if mid <= p || mid >= f {
            break;
        }
        if step(mid, &mut steps) {
            pass = Some(mid);
        } else {
            fail = Some(mid);
        }
    }
    let capacity = pass.unwrap_or(0);
    if args.json {
        let mut s = String::with_capacity(512 * (steps.len() + 1));
        let _ = write!(
            s,
            "{{\"system\":\"poselink\",\"sweep\":{{\"members\":{},\"hz\":{},\"duration_s\":{},\"audio\":{},\
             \"p99_limit_us\":{limit_us},\"capacity_rooms\":{capacity},\"first_failing_rooms\":{},\
             \"sweep_max\":{max_rooms},\"hubs\":{}}},\"steps\":[",
            base.members,
            base.hz,
            base.duration.as_secs_f64(),
            base.audio,
            fail.map_or("null".to_string(), |f| f.to_string()),
            args.hubs.unwrap_or(1),
        );
        s.push_str(&steps.join(","));
        s.push_str("]}");
        println!("{s}");
    } else {
        println!();
        match (pass, fail) {
            (Some(p), Some(f)) => println!(
                "capacity on this machine: {p} rooms of {} members at {} Hz ({} deliveries/s); {f} rooms failed",
                base.members,
                base.hz,
                grouped(deliveries_per_s(base, p))
            ),
            (Some(p), None) => println!(
                "capacity on this machine: at least {p} rooms of {} members at {} Hz ({} deliveries/s): every step passed up to --sweep-max",
                base.members,
                base.hz,
                grouped(deliveries_per_s(base, p))
            ),
            (None, _) => println!(
                "capacity on this machine: none — even {} rooms failed",
                ladder[0]
            ),
        }
    }
    Ok(())
}

/// Deliveries per second the workload asks for at `rooms` rooms.
fn deliveries_per_s(base: &LoadConfig, rooms: usize) -> u64 {
    let per_member = u64::from(base.hz) + if base.audio { u64::from(AUDIO_HZ) } else { 0 };
    (rooms * base.members) as u64 * (base.members as u64 - 1) * per_member
}
