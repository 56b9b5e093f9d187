//! The Python example (`examples/python/json_client.py`, JSON mode over the
//! `websockets` package) against a real hub, with a Rust edge engine in the same
//! room: what Python publishes, the engine receives as binary frames with the
//! values intact (within the quantisation bound), and the reverse. Needs
//! `python3` with `websockets` (CI installs it); a missing one fails the test with
//! the command to fix it. Every subprocess and wait is bounded.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{TestHub, TlsFiles, assert_close};
use poselink::engine::{EdgeEngine, EngineConfig, Event, Priority};
use poselink::proto::{PoseFrame, Role};
use poselink_hal::{PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/python/json_client.py"
);

fn python_ready() {
    let ok = Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with the websockets package (>= 12) is needed: `python3 -m pip install websockets`"
    );
}

fn spawn(args: &[&str]) -> Child {
    Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3")
}

/// Waits for the script (killing it after the timeout); panics with its output on failure.
fn finish(mut child: Child) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            assert!(
                status.success(),
                "json_client.py failed ({status}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        if start.elapsed() > T {
            let _ = child.kill();
            panic!("json_client.py did not finish within {T:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!("poselink-py-{}-{nanos}-{name}", std::process::id()))
}

fn lines(path: &PathBuf) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("the script's output file");
    std::fs::remove_file(path).ok();
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn python_publishes_and_a_rust_engine_receives() {
    python_publishes(None);
}

#[test]
fn python_publishes_over_wss() {
    python_publishes(Some(TlsFiles::local("python")));
}

fn python_publishes(tls: Option<TlsFiles>) {
    python_ready();
    let hub = match &tls {
        Some(files) => TestHub::start_tls(poselink::hub::HubConfig::local_dev(), files),
        None => TestHub::dev(),
    };
    let ca_file = tls.as_ref().and_then(TlsFiles::ca);
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ca_file: ca_file.clone(),
        ..EngineConfig::default()
    })
    .unwrap();
    engine.join_room("py-in", Role::Viewer).unwrap();
    let sent_file = temp(if tls.is_some() {
        "sent-tls.jsonl"
    } else {
        "sent.jsonl"
    });
    let url = hub.url();
    let ca_args: Vec<String> = ca_file
        .map(|f| vec!["--ca-file".to_string(), f])
        .unwrap_or_default();
    let mut args: Vec<&str> = ca_args.iter().map(String::as_str).collect();
    args.extend([
        "publish",
        "--hub",
        &url,
        "--room",
        "py-in",
        "--frames",
        "30",
        "--fps",
        "60",
        "--audio",
        "--sent",
        sent_file.to_str().unwrap(),
    ]);
    let child = spawn(&args);
    let mut got: Vec<PoseFrame> = Vec::new();
    let mut audio = 0;
    let end = Instant::now() + T;
    while got.len() < 30 && Instant::now() < end {
        match engine.wait_event(Duration::from_millis(50)) {
            Some(Event::Pose { frame, .. }) => got.push(frame),
            Some(Event::Audio { chunk, .. }) => {
                assert_eq!((chunk.sample_rate, chunk.len), (48_000, 960));
                audio += 1;
            }
            _ => {}
        }
    }
    finish(child);
    let sent = lines(&sent_file);
    assert_eq!(sent.len(), 30);
    assert_eq!(got.len(), 30, "every Python frame reached the engine");
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(u64::from(g.seq), s["seq"].as_u64().unwrap());
        assert_eq!(g.capture_ts_us, s["timestamp_us"].as_u64().unwrap());
        // The Python values, quantised: compare the engine's frame to them.
        let mut want = *g;
        for (lm, j) in want
            .landmarks
            .iter_mut()
            .zip(s["landmarks"].as_array().unwrap())
        {
            let v = |k: &str| j[k].as_f64().unwrap() as f32;
            (lm.x, lm.y, lm.z, lm.visibility, lm.presence) =
                (v("x"), v("y"), v("z"), v("visibility"), v("presence"));
        }
        let engine_json = serde_json::to_value(
            g.landmarks
                .iter()
                .map(|l| {
                    serde_json::json!({"x": l.x, "y": l.y, "z": l.z,
                        "visibility": l.visibility, "presence": l.presence})
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_close(&engine_json, &want);
    }
    assert!(audio > 0, "the Python audio reached the engine too");
    engine.shutdown();
    thread.join().unwrap();
}

#[test]
fn a_rust_engine_publishes_and_python_receives() {
    python_ready();
    let hub = TestHub::dev();
    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("py-out", Role::Member).unwrap();
    let out_file = temp("received.jsonl");
    let url = hub.url();
    let child = spawn(&[
        "subscribe",
        "--hub",
        &url,
        "--room",
        "py-out",
        "--frames",
        "30",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    // Wait until the Python viewer is in the room.
    let end = Instant::now() + T;
    let mut joined = false;
    while !joined && Instant::now() < end {
        joined = matches!(
            engine.wait_event(Duration::from_millis(50)),
            Some(Event::MemberJoined { .. })
        );
    }
    assert!(joined, "the Python viewer joined");
    let mut src = SyntheticPose::new(SyntheticConfig::default());
    let mut s = PoseSample::zeroed();
    let mut frames = Vec::new();
    for seq in 1..=30u32 {
        src.next_pose(&mut s).unwrap();
        let mut f = PoseFrame::from_arrays(seq, 0, 10_000 + u64::from(seq), &s.landmarks);
        f.clamp_to_range();
        engine.send_pose(&f, room, Priority::NORMAL).unwrap();
        frames.push(f);
        std::thread::sleep(Duration::from_millis(16));
    }
    finish(child);
    let got = lines(&out_file);
    assert_eq!(got.len(), 30, "Python received every frame");
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(g["seq"].as_u64().unwrap(), u64::from(f.seq));
        assert_eq!(g["timestamp_us"].as_u64().unwrap(), f.capture_ts_us);
        assert_close(&g["landmarks"], f);
    }
    engine.shutdown();
    thread.join().unwrap();
}
