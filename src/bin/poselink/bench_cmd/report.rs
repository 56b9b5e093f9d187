//! What a run prints: the table, the JSON object (see BENCHMARKS.md), a sweep's
//! rows, and the notes on stderr about what went wrong.

use std::fmt::Write as _;

use poselink::loadgen::LoadConfig;

use super::{Run, Target};

impl Run {
    /// The run as one JSON object (see BENCHMARKS.md).
    pub(super) fn json(&self) -> String {
        let r = &self.report;
        let l = &r.latency;
        let num = |v: Option<f64>, decimals: usize| match v {
            Some(x) if x.is_finite() => format!("{x:.decimals$}"),
            _ => "null".into(),
        };
        let hub_cpu = self.hub.map(|h| h.cpu_s);
        let per_cpu = self
            .hub
            .filter(|h| h.cpu_s > 0.0)
            .map(|h| r.delivered as f64 / h.cpu_s);
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"system\":\"poselink\",\"rooms\":{},\"members\":{},\"hz\":{},\"duration_s\":{},\
             \"expected\":{},\"delivered\":{},\"loss\":{},\
             \"latency_us\":{{\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}},\
             \"hub_cpu_s\":{},\"hub_peak_rss_kib\":{},\"deliveries_per_hub_cpu_s\":{},\
             \"loadgen_cpu_s\":{:.3},\"bytes_per_frame\":{:.1},\
             \"audio\":{},\"tls\":{},\"loadgen_threads\":{},\"pinned\":{},\"send_lag_p99_us\":{},\"connections_lost\":{},\
             \"hub_us_per_delivery\":{},\"floor_us\":{},\"hub_to_floor\":{}}}",
            self.cfg.rooms,
            self.cfg.members,
            self.cfg.hz,
            self.cfg.duration.as_secs_f64(),
            r.expected,
            r.delivered,
            r.loss(),
            l.quantile(0.5),
            l.quantile(0.95),
            l.quantile(0.99),
            l.max(),
            num(hub_cpu, 3),
            self.hub
                .map_or("null".to_string(), |h| h.peak_rss_kib.to_string()),
            num(per_cpu, 0),
            r.cpu.as_secs_f64(),
            r.bytes_per_frame(),
            self.cfg.audio,
            self.cfg.tls_ca.is_some(),
            r.threads,
            self.pinned,
            r.send_lag.quantile(0.99),
            r.connections_lost,
            num(self.hub_us_per_delivery(), 2),
            self.floor.map_or("null".to_string(), |f| format!(
                "{{\"single\":{:.2},\"spread\":{:.2},\"paced\":{:.2},\"sockets\":{},\"bytes\":{}}}",
                f.single_us, f.spread_us, f.paced_us, f.sockets, f.bytes
            )),
            num(self.to_floor(), 2),
        );
        if let Some(c) = &self.cluster {
            // The same object, with the cluster's fields before its close.
            s.pop();
            let _ = write!(s, ",\"hubs\":{},\"per_hub\":[", c.nodes.len());
            for (k, n) in c.nodes.iter().enumerate() {
                let per = (n.cpu_s > 0.0).then(|| n.delivered as f64 / n.cpu_s);
                let _ = write!(
                    s,
                    "{}{{\"node\":{},\"cpu_s\":{:.3},\"broker_thread_cpu_s\":{:.3},\
                     \"peak_rss_kib\":{},\"delivered\":{},\"deliveries_per_cpu_s\":{}}}",
                    if k == 0 { "" } else { "," },
                    json_string(&n.node),
                    n.cpu_s,
                    n.broker_thread_cpu_s,
                    n.peak_rss_kib,
                    n.delivered,
                    num(per, 0),
                );
            }
            let _ = write!(
                s,
                "],\"broker_messages_out\":{},\"broker_messages_in\":{},\
                 \"broker_messages_per_s\":{:.0},\"broker_cpu_s\":{},\
                 \"cluster_media_dropped\":{},\"cluster_unknown_sender\":{},\"nats\":{}}}",
                c.broker_out,
                c.broker_in,
                c.broker_messages_per_s(),
                num(c.broker_cpu_s, 3),
                c.media_dropped,
                c.unknown_sender,
                c.nats.as_deref().map_or("null".to_string(), json_string),
            );
        }
        s
    }
}

/// `1234567` as `1 234 567`.
pub(super) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn describe(cfg: &LoadConfig) -> String {
    format!(
        "{} rooms × {} members, pose {} Hz{}, {} s{}",
        cfg.rooms,
        cfg.members,
        cfg.hz,
        if cfg.audio { " + audio 50 Hz" } else { "" },
        cfg.duration.as_secs_f64(),
        if cfg.tls_ca.is_some() {
            ", over TLS"
        } else {
            ""
        }
    )
}

pub(super) fn print_table(run: &Run, target: &Target) {
    let r = &run.report;
    let l = &r.latency;
    let hub = match target {
        Target::Spawn(Some(cpu), _) => format!(
            "a separate process started for the run, pinned to CPU {cpu} (the load generator to the others)"
        ),
        Target::Spawn(None, _) => "a separate process started for the run".to_string(),
        Target::External(addr, Some(pid)) => format!("ws://{addr}/ (pid {pid})"),
        Target::External(addr, None) => format!("ws://{addr}/ (no --hub-pid: no hub figures)"),
        Target::Cluster(spec) => format!(
            "{} hubs in a cluster, separate processes started for the run, each room's members \
             spread over them{}; broker: {}",
            spec.hubs,
            match &spec.cpus {
                Some(c) => format!(
                    " (hubs and broker pinned to CPU {c:?}, the load generator to the others)"
                ),
                None => String::new(),
            },
            spec.nats
                .as_deref()
                .unwrap_or("nats-server started for the run"),
        ),
    };
    println!("poselink bench, pose-room: {}", describe(&run.cfg));
    println!(
        "hub: {hub}; load generator: {} connections on {} thread{}",
        r.connections,
        r.threads,
        if r.threads == 1 { "" } else { "s" }
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| deliveries expected / delivered | {} / {} |",
        grouped(r.expected),
        grouped(r.delivered)
    );
    println!("| loss | {} |", r.loss());
    if r.flooders > 0 {
        println!(
            "| flooders closed by the hub | {} of {} ({} pings written; the last closed after {}) |",
            r.flooders_closed,
            r.flooders,
            grouped(r.flood_messages),
            r.flooder_closed_after
                .map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
        );
    }
    println!(
        "| latency p50 / p95 / p99 / max | {} / {} / {} / {} µs |",
        l.quantile(0.5),
        l.quantile(0.95),
        l.quantile(0.99),
        l.max()
    );
    match run.hub {
        Some(h) => {
            let per = if h.cpu_s > 0.0 {
                format!(
                    " ({} deliveries per CPU second, {:.2} µs per delivery)",
                    grouped((r.delivered as f64 / h.cpu_s) as u64),
                    h.cpu_s * 1e6 / r.delivered.max(1) as f64
                )
            } else {
                String::new()
            };
            let over = if run.cluster.is_some() {
                ", summed over the hubs"
            } else {
                ""
            };
            println!("| hub CPU{over} | {:.3} s{per} |", h.cpu_s);
            println!("| hub peak RSS{over} | {} KiB |", grouped(h.peak_rss_kib));
        }
        None => println!("| hub CPU, peak RSS | not measured |"),
    }
    println!(
        "| load generator CPU | {:.3} s (sends late by p99 {} µs) |",
        r.cpu.as_secs_f64(),
        r.send_lag.quantile(0.99)
    );
    println!("| bytes per pose frame | {:.1} |", r.bytes_per_frame());
    if let Some(f) = run.floor {
        println!(
            "| floor: CPU of one {}-byte write to a loopback socket: back to back / over {} sockets in turn / the same, one every 50 µs (a waiting reader) | {:.2} / {:.2} / {:.2} µs |",
            f.bytes, f.sockets, f.single_us, f.spread_us, f.paced_us
        );
        if let Some(x) = run.to_floor() {
            println!(
                "| hub CPU per delivery ÷ floor (over {} sockets) | {x:.2}× |",
                f.sockets
            );
        }
    }
    if let Some(c) = &run.cluster {
        for n in &c.nodes {
            println!(
                "| {}: CPU (its broker thread's), deliveries, peak RSS | {:.3} s ({:.3} s), {} ({} per CPU second), {} KiB |",
                n.node,
                n.cpu_s,
                n.broker_thread_cpu_s,
                grouped(n.delivered),
                if n.cpu_s > 0.0 {
                    grouped((n.delivered as f64 / n.cpu_s) as u64)
                } else {
                    "-".into()
                },
                grouped(n.peak_rss_kib)
            );
        }
        println!(
            "| broker messages, out / in (all hubs) | {} / {} ({} out per second) |",
            grouped(c.broker_out),
            grouped(c.broker_in),
            grouped(c.broker_messages_per_s() as u64)
        );
        if let Some(cpu) = c.broker_cpu_s {
            println!("| broker (nats-server) CPU | {cpu:.3} s |");
        }
        println!(
            "| media the cluster link dropped / from unknown senders | {} / {} |",
            c.media_dropped, c.unknown_sender
        );
    }
}

/// Tells stderr what went wrong during a run, if anything did.
pub(super) fn note_problems(run: &Run) {
    let r = &run.report;
    if r.connections_lost > 0 || r.hub_errors > 0 || r.unsent > 0 || r.misrouted > 0 {
        eprintln!(
            "poselink: note: {} connections lost, {} error messages from the hub, {} frames unsent, {} misrouted{}",
            r.connections_lost,
            r.hub_errors,
            r.unsent,
            r.misrouted,
            r.first_problem
                .as_deref()
                .map_or(String::new(), |p| format!("; first: {p}"))
        );
    }
}

/// `text` as a JSON string literal.
pub(super) fn json_string(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

pub(super) fn print_step(run: &Run, ok: bool) {
    let r = &run.report;
    let secs = run.cfg.duration.as_secs_f64();
    let pct = |s: f64| format!("{:.0}", 100.0 * s / secs);
    println!(
        "| {} | {} | {} | {} | {} / {} / {} | {} | {} | {} | {} |",
        run.cfg.rooms,
        r.connections,
        grouped((r.delivered as f64 / secs) as u64),
        r.loss(),
        r.latency.quantile(0.5),
        r.latency.quantile(0.99),
        r.latency.max(),
        run.hub.map_or("—".to_string(), |h| pct(h.cpu_s)),
        run.hub_us_per_delivery()
            .map_or("—".to_string(), |us| format!(
                "{} ({})",
                grouped((1e6 / us) as u64),
                run.to_floor()
                    .map_or("—".to_string(), |x| format!("{x:.2}×"))
            )),
        pct(r.cpu.as_secs_f64()),
        if ok { "pass" } else { "FAIL" }
    );
}
