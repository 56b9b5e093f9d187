//! `poselink bench`, run as a subprocess on 127.0.0.1: short pose-room loads whose
//! JSON line must be well formed, lossless and plausible — with the hub the bench
//! starts itself, with audio, against a hub already running (this test's own,
//! measured through this process's pid), as a sweep, and on two hubs in a
//! cluster over a `nats-server` the bench starts; and the refusals of bad
//! arguments. Every subprocess is bounded by a timeout.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TestHub;
use poselink::hub::HubConfig;
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(90);

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `poselink bench args…`, killing it after [`TIMEOUT`].
fn bench(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poselink"))
        .arg("bench")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn poselink");
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("poselink bench {args:?} did not exit within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// The one JSON line of a successful run.
fn json_line(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        out.stdout,
        out.stderr
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{}", out.stdout);
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]))
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

/// Checks a run's object: the workload's shape, no loss, ordered and sane
/// latencies, and (with `hub`) positive hub figures.
fn check_run(v: &Value, rooms: u64, members: u64, hz: u64, secs: u64, audio: bool, hub: bool) {
    assert_eq!(v["system"], "poselink");
    assert_eq!(
        (u(v, "rooms"), u(v, "members"), u(v, "hz")),
        (rooms, members, hz)
    );
    assert_eq!(f(v, "duration_s"), secs as f64);
    assert_eq!(v["audio"], audio);
    // Every member publishes D·F pose frames (and D·50 audio chunks), each owed to
    // the other M − 1 members.
    let per_member = secs * hz + if audio { secs * 50 } else { 0 };
    let expected = rooms * members * (members - 1) * per_member;
    assert_eq!(u(v, "expected"), expected, "{v}");
    assert_eq!(u(v, "delivered"), expected, "loss: {v}");
    assert_eq!(f(v, "loss"), 0.0);
    assert_eq!(u(v, "connections_lost"), 0);
    let l = &v["latency_us"];
    let (p50, p95, p99, max) = (u(l, "p50"), u(l, "p95"), u(l, "p99"), u(l, "max"));
    assert!(p50 <= p95 && p95 <= p99 && p99 <= max, "{l}");
    assert!(max > 0, "latency cannot be zero on every message: {l}");
    assert!(p99 < 1_000_000, "p99 of a second on loopback: {l}");
    assert!(f(v, "loadgen_cpu_s") > 0.0, "{v}");
    assert!(u(v, "loadgen_threads") >= 1);
    // A quantised pose frame is about 110 bytes (envelope and CRC included).
    let bpf = f(v, "bytes_per_frame");
    assert!((60.0..200.0).contains(&bpf), "bytes_per_frame {bpf}");
    if hub {
        assert!(f(v, "hub_cpu_s") > 0.0, "{v}");
        assert!(u(v, "hub_peak_rss_kib") > 1000, "{v}");
        let per = f(v, "deliveries_per_hub_cpu_s");
        let want = expected as f64 / f(v, "hub_cpu_s");
        // Rounded to whole deliveries per second, and the CPU time to 1 ms.
        assert!((per - want).abs() <= want * 0.01 + 1.0, "{per} vs {want}");
    } else {
        assert!(v["hub_cpu_s"].is_null() && v["hub_peak_rss_kib"].is_null());
    }
}

#[test]
fn a_short_bench_is_lossless_and_its_line_well_formed() {
    // Large enough that the hub's CPU time, counted in 10 ms ticks, is not zero.
    let out = bench(&[
        "--rooms",
        "5",
        "--members",
        "4",
        "--hz",
        "60",
        "--duration",
        "2",
        "--json",
    ]);
    let v = json_line(&out);
    check_run(&v, 5, 4, 60, 2, false, true);
}

#[test]
fn audio_is_delivered_and_counted() {
    let out = bench(&[
        "--rooms",
        "2",
        "--members",
        "4",
        "--hz",
        "30",
        "--duration",
        "2",
        "--audio",
        "--json",
    ]);
    let v = json_line(&out);
    check_run(&v, 2, 4, 30, 2, true, true);
}

#[test]
fn a_running_hub_is_measured_through_its_pid() {
    // The hub runs on a thread of this test process: its pid is ours.
    let hub = TestHub::start(HubConfig {
        max_connections: 64,
        ..HubConfig::local_dev()
    });
    let url = hub.url();
    let pid = std::process::id().to_string();
    let args = [
        "--rooms",
        "5",
        "--members",
        "4",
        "--hz",
        "60",
        "--duration",
        "1",
        "--json",
    ];
    let with_pid = [&args[..], &["--hub", &url, "--hub-pid", &pid]].concat();
    check_run(&json_line(&bench(&with_pid)), 5, 4, 60, 1, false, true);
    // Without a pid the hub's figures are absent, not invented.
    let without = [&args[..], &["--hub", &url]].concat();
    check_run(&json_line(&bench(&without)), 5, 4, 60, 1, false, false);
    let report = hub.stop();
    // 2 runs × 20 members × 60 frames × 3 receivers.
    assert_eq!(report.stats.delivered, 7200);
}

#[test]
fn a_sweep_reports_its_steps_and_the_capacity() {
    let out = bench(&[
        "--sweep",
        "--sweep-max",
        "20",
        "--members",
        "4",
        "--hz",
        "60",
        "--duration",
        "1",
        // Generous: this is about the report, not this machine's latency while
        // the other tests (browsers among them) run beside it.
        "--p99-limit-ms",
        "250",
        "--json",
    ]);
    let v = json_line(&out);
    assert_eq!(v["system"], "poselink");
    let s = &v["sweep"];
    assert_eq!(
        (u(s, "members"), u(s, "hz"), u(s, "sweep_max")),
        (4, 60, 20)
    );
    assert_eq!(u(s, "p99_limit_us"), 250_000);
    let steps = v["steps"].as_array().unwrap();
    let rooms: Vec<u64> = steps.iter().map(|st| u(st, "rooms")).collect();
    assert_eq!(rooms, [10, 20], "the ladder up to --sweep-max");
    for st in steps {
        assert_eq!(st["pass"], true, "{st}");
        check_run(st, u(st, "rooms"), 4, 60, 1, false, true);
    }
    assert_eq!(u(s, "capacity_rooms"), 20);
    assert!(s["first_failing_rooms"].is_null());
}

/// `--hubs 2`: a broker and two hubs started by the bench, each room's two
/// members on different hubs, so every delivery crosses the broker.
#[test]
fn two_hubs_in_a_cluster_lose_nothing_and_report_each_hub() {
    let out = bench(&[
        "--hubs",
        "2",
        "--rooms",
        "2",
        "--members",
        "2",
        "--hz",
        "30",
        "--duration",
        "2",
        "--json",
    ]);
    let v = json_line(&out);
    // The same line as one hub's (hub_cpu_s summed over the hubs)…
    check_run(&v, 2, 2, 30, 2, false, true);
    // …and the cluster's fields.
    assert_eq!(u(&v, "hubs"), 2);
    let per_hub = v["per_hub"].as_array().expect("per_hub is a list");
    assert_eq!(per_hub.len(), 2, "{v}");
    let mut delivered = 0;
    let mut cpu = 0.0;
    for (k, h) in per_hub.iter().enumerate() {
        assert_eq!(h["node"], format!("hub-{k}"));
        // Each hub delivers what the other hub's member published: 2 rooms × 60 frames.
        assert_eq!(u(h, "delivered"), 120, "{h}");
        assert!(u(h, "peak_rss_kib") > 1000, "{h}");
        assert!(f(h, "broker_thread_cpu_s") <= f(h, "cpu_s"), "{h}");
        delivered += u(h, "delivered");
        cpu += f(h, "cpu_s");
    }
    assert_eq!(
        delivered,
        u(&v, "delivered"),
        "the hubs agree with the receivers"
    );
    assert!((cpu - f(&v, "hub_cpu_s")).abs() < 0.002, "{v}");
    // Every message published once to the broker, and heard once by the other
    // hub (heartbeats and announcements on top: they go to every hub).
    let (out_, in_) = (u(&v, "broker_messages_out"), u(&v, "broker_messages_in"));
    assert!((240..400).contains(&out_), "{v}");
    assert!(in_ >= 240, "{v}");
    assert!(f(&v, "broker_messages_per_s") > 0.0);
    assert!(
        f(&v, "broker_cpu_s") >= 0.0,
        "the bench started the broker: {v}"
    );
    assert_eq!(u(&v, "cluster_media_dropped"), 0);
    assert_eq!(u(&v, "cluster_unknown_sender"), 0);
    assert!(v["nats"].is_null());
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let one = bench(&["--members", "1"]);
    assert_eq!(one.status.code(), Some(2), "{}", one.stderr);
    assert!(
        one.stderr.contains("members must be at least 2"),
        "{}",
        one.stderr
    );

    let zero = bench(&["--duration", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", zero.stderr);
    assert!(zero.stderr.contains("--duration"), "{}", zero.stderr);

    let pid = bench(&["--hub-pid", "1"]);
    assert_eq!(pid.status.code(), Some(2), "--hub-pid needs --hub");

    let one_hub = bench(&["--hubs", "1"]);
    assert_eq!(one_hub.status.code(), Some(2), "{}", one_hub.stderr);
    assert!(
        one_hub.stderr.contains("--hubs must be 2"),
        "{}",
        one_hub.stderr
    );
    let both = bench(&["--hubs", "2", "--hub", "ws://127.0.0.1:1/"]);
    assert_eq!(
        both.status.code(),
        Some(2),
        "--hubs and --hub: {}",
        both.stderr
    );
    let nats = bench(&["--nats", "nats://127.0.0.1:1"]);
    assert_eq!(nats.status.code(), Some(2), "--nats needs --hubs");

    // Nothing listens on port 1: a runtime error that says so.
    let nobody = bench(&["--hub", "ws://127.0.0.1:1/", "--duration", "1"]);
    assert_eq!(nobody.status.code(), Some(1), "{}", nobody.stderr);
    assert!(
        nobody
            .stderr
            .contains("cannot connect to the hub at 127.0.0.1:1"),
        "{}",
        nobody.stderr
    );
}
