//! The demo's closing report: the JSON document built from the monitor, every
//! device's counters, the receiver's and the hub's figures, and its summary.

use super::hub_metrics::metric;
use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
    args: &DemoArgs,
    devices: &[Device],
    overall: &PerformanceMonitor,
    now: u64,
    elapsed_s: f64,
    stopped_early: bool,
    unknown_sender: u64,
    receiver: &EngineMetrics,
    hub_report: Option<&str>,
    hub_metrics: Option<&str>,
) -> Outcome {
    let mut report: Value =
        serde_json::from_str(&overall.report_json(now)).unwrap_or_else(|_| json!({}));
    let mut per_device = Vec::with_capacity(devices.len());
    let (mut sent, mut received, mut audio_sent, mut audio_received, mut drops) = (0, 0, 0, 0, 0);
    let mut submitted = 0;
    for d in devices {
        let m = d.final_metrics.unwrap_or_else(|| d.engine.metrics());
        let lat = d.run.get_performance_metrics(now);
        let unique_audio = m.audio_sent - m.audio_replayed;
        sent += m.poses_sent;
        received += d.poses_received;
        audio_sent += unique_audio;
        audio_received += d.audio_received;
        drops += engine_drops(&m);
        submitted += d.submitted.poses.load(Ordering::Relaxed);
        per_device.push(json!({
            "device": d.name,
            "room": format!("demo-{}", d.room),
            "poses_submitted": d.submitted.poses.load(Ordering::Relaxed),
            "poses_sent": m.poses_sent,
            "poses_received": d.poses_received,
            "fps_sent": m.poses_sent as f64 / elapsed_s,
            "fps_received": d.poses_received as f64 / elapsed_s,
            "audio_sent": unique_audio,
            "audio_received": d.audio_received,
            "latency_ms": {
                "avg": get(&lat, "latency_avg_ms"),
                "p50": get(&lat, "latency_p50_ms"),
                "p95": get(&lat, "latency_p95_ms"),
                "p99": get(&lat, "latency_p99_ms"),
                "max": get(&lat, "latency_max_ms"),
            },
            "bytes_per_frame": (m.poses_sent > 0).then(|| m.pose_bytes_sent as f64 / m.poses_sent as f64),
            "bytes_sent": m.bytes_sent,
            "engine_drops": engine_drops(&m),
            "engine_cpu_s": m.thread_cpu_us as f64 / 1e6,
            "reconnects": m.reconnects,
        }));
    }
    let lost = sent.saturating_sub(received);
    let audio_lost = audio_sent.saturating_sub(audio_received);
    let ok = lost == 0 && audio_lost == 0;
    let obj = report
        .as_object_mut()
        .expect("the monitor's report is an object");
    obj.insert(
        "demo".into(),
        json!({
            "devices": args.devices,
            "rooms": args.rooms,
            "fps": args.fps,
            "audio": !args.no_audio,
            "duration_s": elapsed_s,
            "stopped_early": stopped_early,
            "hub": args.hub.clone().unwrap_or_else(|| "in-process".into()),
            "latency": "capture on the device to the receiving application, one clock",
        }),
    );
    obj.insert(
        "totals".into(),
        json!({
            "poses_submitted": submitted,
            "poses_sent": sent,
            "poses_received": received,
            "poses_lost": lost,
            "audio_sent": audio_sent,
            "audio_received": audio_received,
            "audio_lost": audio_lost,
            "loss": if sent + audio_sent > 0 { (lost + audio_lost) as f64 / (sent + audio_sent) as f64 } else { 0.0 },
            "engine_drops": drops,
            "from_unknown_senders": unknown_sender,
            "receiver_bytes": receiver.bytes_received,
        }),
    );
    obj.insert("devices".into(), Value::Array(per_device));
    if let Some(r) = hub_report.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        let mut hub = json!({ "report": r });
        if let Some(body) = hub_metrics {
            for (k, name) in [
                ("loop_cpu_s", "poselink_loop_cpu_seconds_total"),
                ("delivered", "poselink_delivered_total"),
                ("resident_memory_bytes", "process_resident_memory_bytes"),
            ] {
                hub[k] = metric(body, name).map_or(Value::Null, |v| json!(v));
            }
        }
        obj.insert("hub".into(), hub);
    }
    (report, ok)
}

pub(super) fn finish(
    args: &DemoArgs,
    report: Value,
    _hub: Option<Option<HubReport>>,
    ok: bool,
) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(&report).expect("a JSON value serialises");
    let t = &report["totals"];
    println!();
    println!(
        "summary: {} pose frames sent, {} received ({} lost), {} audio chunks sent, {} received; \
         latency p50 {} ms, p99 {} ms; process CPU {} %, memory {} MB",
        t["poses_sent"],
        t["poses_received"],
        t["poses_lost"],
        t["audio_sent"],
        t["audio_received"],
        fmt_num(&report["latency"]["p50"]),
        fmt_num(&report["latency"]["p99"]),
        fmt_num(&report["resource_usage"]["cpu"]),
        fmt_num(&report["resource_usage"]["memory_max"]),
    );
    println!("performance report:\n{text}");
    if let Some(path) = &args.report {
        std::fs::write(path, format!("{text}\n")).map_err(|e| {
            CliError::runtime(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
        println!("report written to {}", path.display());
    }
    if ok {
        Ok(())
    } else {
        Err(CliError::runtime(format!(
            "not every frame sent was received ({} pose frames and {} audio chunks lost)",
            t["poses_lost"], t["audio_lost"],
        )))
    }
}

fn fmt_num(v: &Value) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.2}"))
}
