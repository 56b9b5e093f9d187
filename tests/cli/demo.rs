//! `poselink demo` as a subprocess, end to end: its own in-process hub, four
//! simulated devices streaming pose and audio to a receiver for a few seconds;
//! the report (printed and written to a file) shows every frame received and the
//! seed's fields. Also against an external hub (`--hub`), and its usage errors.
//! Every subprocess is bounded by a timeout.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TestHub;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `poselink demo ARGS`; (status, stdout, stderr), killed after the timeout.
fn demo(args: &[&str]) -> (ExitStatus, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poselink"))
        .arg("demo")
        .args(args)
        .env_remove("POSELINK_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poselink");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "poselink demo {args:?} did not exit within {TIMEOUT:?}:\n{}",
                out.join().unwrap()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "poselink-cli-demo-{}-{nanos}-{name}",
        std::process::id()
    ))
}

fn num(v: &Value, what: &str) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// The checks every zero-loss run must pass.
fn check_report(r: &Value, devices: usize, fps: f64, secs: f64) {
    let t = &r["totals"];
    let sent = num(&t["poses_sent"], "poses_sent");
    // Pacing may start a little late on a busy machine, but not by much.
    let expected = devices as f64 * fps * secs;
    assert!(
        sent >= 0.8 * expected && sent <= 1.1 * expected,
        "{sent} pose frames sent, about {expected} expected:\n{r:#}"
    );
    assert_eq!(t["poses_received"], t["poses_sent"], "{r:#}");
    assert_eq!(t["poses_lost"], 0, "{r:#}");
    assert_eq!(t["audio_lost"], 0, "{r:#}");
    assert_eq!(t["loss"], 0.0, "{r:#}");
    assert!(num(&t["audio_sent"], "audio_sent") >= 0.8 * devices as f64 * 50.0 * secs);
    assert_eq!(t["from_unknown_senders"], 0, "{r:#}");
    // The seed's fields.
    for (section, field) in [
        ("latency", "avg"),
        ("latency", "p95"),
        ("latency", "p99"),
        ("resource_usage", "cpu"),
        ("resource_usage", "memory"),
        ("reliability", "success_rate"),
        ("reliability", "error_rate"),
    ] {
        num(&r[section][field], &format!("{section}.{field}"));
    }
    let p99 = num(&r["latency"]["p99"], "p99");
    assert!(p99 > 0.0 && p99 < 1_000.0, "p99 {p99} ms");
    assert_eq!(
        num(&r["latency"]["count"], "count"),
        sent,
        "one latency per frame"
    );
    assert_eq!(r["reliability"]["success_rate"], 1.0, "{r:#}");
    let per_device = r["devices"].as_array().expect("devices");
    assert_eq!(per_device.len(), devices);
    for d in per_device {
        assert_eq!(d["poses_received"], d["poses_sent"], "{d:#}");
        let bpf = num(&d["bytes_per_frame"], "bytes_per_frame");
        assert!(bpf > 20.0 && bpf < 600.0, "{bpf} bytes per frame");
        num(&d["latency_ms"]["p99"], "device p99");
    }
}

#[test]
fn the_demo_streams_end_to_end_with_zero_loss() {
    let file = temp_path("report.json");
    let (status, stdout, stderr) = demo(&["--duration", "3", "--report", file.to_str().unwrap()]);
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    // The live table: a header and a row per device each second.
    assert!(stdout.contains("fps sent"), "{stdout}");
    assert!(
        stdout.lines().filter(|l| l.contains(" dev-3 ")).count() >= 2,
        "{stdout}"
    );
    assert!(stdout.contains("summary: "), "{stdout}");
    // Quiet logs: no info lines from the hub or the engines.
    assert!(!stderr.contains("INFO"), "{stderr}");
    let text = std::fs::read_to_string(&file).expect("the report file");
    std::fs::remove_file(&file).ok();
    let report: Value = serde_json::from_str(&text).expect("the report is JSON");
    check_report(&report, 4, 30.0, 3.0);
    assert_eq!(report["demo"]["hub"], "in-process");
    // The hub's own report is part of it, and counted the same deliveries.
    let hub = &report["hub"];
    assert!(num(&hub["delivered"], "hub delivered") > 0.0, "{hub:#}");
    assert!(num(&hub["report"]["latency"]["p99"], "hub p99") >= 0.0);
    assert!(num(&hub["loop_cpu_s"], "hub loop cpu") > 0.0);
    // The printed report is the file's.
    assert!(stdout.contains(text.trim()), "the report is printed too");
}

#[test]
fn the_demo_uses_an_external_hub_and_several_rooms() {
    let hub = TestHub::dev();
    let url = hub.url();
    let (status, stdout, stderr) = demo(&[
        "--hub",
        &url,
        "--devices",
        "3",
        "--rooms",
        "2",
        "--fps",
        "20",
        "--duration",
        "2",
        "--quiet",
    ]);
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    assert!(!stdout.contains("fps sent"), "--quiet prints no table");
    let json = &stdout[stdout.find("performance report:\n").expect("report") + 20..];
    let report: Value = serde_json::from_str(json).expect("the printed report is JSON");
    check_report(&report, 3, 20.0, 2.0);
    assert_eq!(report["demo"]["hub"], url.as_str());
    let rooms: Vec<&str> = report["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, ["demo-0", "demo-1", "demo-0"]);
    // The external hub relayed it.
    assert!(hub.metric("poselink_delivered_total") > 0.0);
}

#[test]
fn demo_usage_errors_say_what_to_change() {
    let (status, _, stderr) = demo(&["--devices", "2", "--rooms", "3"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--rooms 3 is more than --devices 2"),
        "{stderr}"
    );
    let (status, _, stderr) = demo(&["--fps", "0"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--fps"), "{stderr}");
    // Nothing listens on port 1: a runtime error naming the hub.
    let (status, _, stderr) = demo(&["--hub", "ws://127.0.0.1:1/", "--duration", "1"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}
