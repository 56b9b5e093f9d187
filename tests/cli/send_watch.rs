//! `poselink send` and `poselink watch` as subprocesses against an in-process dev
//! hub: a sender streams pose and audio for 2 s, a watcher sees it at a plausible
//! rate and records it, and the recording replays through the hal's
//! `ReplaySource`. Every subprocess is bounded by a timeout.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::TestHub;
use poselink_hal::{
    AudioBlock, AudioSource, Error as _, ErrorKind, PoseSample, PoseSource, ReplaySource,
};

const TIMEOUT: Duration = Duration::from_secs(15);

/// A running `poselink` whose stdout lines arrive on a channel (and are kept).
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: thread::JoinHandle<String>,
    started: Instant,
    what: String,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_poselink"))
            .args(args)
            .env_remove("POSELINK_TOKEN")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn poselink");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Proc {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
            started: Instant::now(),
            what: format!("poselink {args:?}"),
        }
    }

    /// Waits for a stdout line containing `needle` (within the timeout).
    fn wait_line(&mut self, needle: &str) {
        while self.started.elapsed() < TIMEOUT {
            match self.lines.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stdout.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "{} never printed {needle:?}; stdout so far:\n{}",
            self.what,
            self.stdout.join("\n")
        );
    }

    /// Waits for the exit (killing it after the timeout); (status, stdout, stderr).
    fn finish(mut self) -> (ExitStatus, String, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if self.started.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {TIMEOUT:?}; stdout:\n{}",
                    self.what,
                    self.stdout.join("\n")
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at EOF, closing the channel.
        self.stdout.extend(self.lines.iter());
        let stderr = self.stderr.join().unwrap();
        (status, self.stdout.join("\n"), stderr)
    }
}

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "poselink-cli-send-watch-{}-{nanos}-{name}",
        std::process::id()
    ))
}

/// The number after `key` in `line` (`"pose 30.0 fps"` with key `"pose "`).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn send_and_watch_stream_record_and_replay() {
    let hub = TestHub::dev();
    let url = hub.url();
    let rec = temp_path("watch.rec");
    let rec_str = rec.to_str().unwrap();

    let mut watch = Proc::spawn(&[
        "watch",
        "--hub",
        &url,
        "--room",
        "t",
        "--duration",
        "3",
        "--record",
        rec_str,
    ]);
    // The watcher is in the room before the sender starts.
    watch.wait_line("joined room");
    let send = Proc::spawn(&[
        "send",
        "--hub",
        &url,
        "--room",
        "t",
        "--fps",
        "30",
        "--audio",
        "--duration",
        "2",
    ]);

    let (status, send_out, send_err) = send.finish();
    assert!(
        status.success(),
        "send: {status}\nstdout:\n{send_out}\nstderr:\n{send_err}"
    );
    let (status, watch_out, watch_err) = watch.finish();
    assert!(
        status.success(),
        "watch: {status}\nstdout:\n{watch_out}\nstderr:\n{watch_err}"
    );

    // send: per-second lines with frames and audio going out.
    let stats: Vec<&str> = send_out
        .lines()
        .filter(|l| l.starts_with('[') && l.contains("kbit/s"))
        .collect();
    assert!(!stats.is_empty(), "no stats lines in:\n{send_out}");
    for line in &stats {
        let fps = number_after(line, " pose ").expect(line);
        assert!(fps > 0.0, "no frames sent: {line}\n{send_out}");
        assert!(number_after(line, "audio ").expect(line) > 0.0, "{line}");
        assert!(line.contains("connected"), "{line}");
    }
    assert!(send_out.contains("summary:"), "{send_out}");

    // watch: a sender with a plausible frame rate in some full second.
    let rates: Vec<f64> = watch_out
        .lines()
        .filter(|l| l.contains("sender ") && l.contains(" fps"))
        .filter_map(|l| number_after(l, "pose "))
        .collect();
    assert!(
        rates.iter().any(|r| (20.0..=40.0).contains(r)),
        "no second at 20-40 fps: {rates:?}\n{watch_out}"
    );
    assert!(watch_out.contains("joined: member"), "{watch_out}");
    let audio_rates: Vec<f64> = watch_out
        .lines()
        .filter(|l| l.contains("sender ") && l.contains(" fps"))
        .filter_map(|l| number_after(l, "audio "))
        .collect();
    assert!(
        audio_rates.iter().any(|r| (40.0..=60.0).contains(r)),
        "no second at ~50 audio chunks/s: {audio_rates:?}\n{watch_out}"
    );

    // The recording replays: the poses in capture order, the audio in sequence.
    let mut src = ReplaySource::open(&rec).expect("the recording opens");
    let mut sample = PoseSample::zeroed();
    let mut poses = 0;
    let mut last_ts = 0;
    loop {
        match src.next_pose(&mut sample) {
            Ok(()) => {
                assert!(sample.capture_ts_us > last_ts, "capture times increase");
                last_ts = sample.capture_ts_us;
                // Quantised on the wire, but still a body in the picture.
                assert!((0.0..=1.0).contains(&sample.landmarks[0][3]));
                poses += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::EndOfStream, "{e}");
                break;
            }
        }
    }
    assert!(poses >= 30, "only {poses} poses recorded\n{watch_out}");
    let mut block = AudioBlock::zeroed();
    let mut audio = 0;
    while src.next_audio(&mut block).is_ok() {
        assert_eq!(
            (block.sample_rate, block.channels, block.len),
            (48_000, 1, 960)
        );
        audio += 1;
    }
    assert!(audio >= 50, "only {audio} audio blocks recorded");

    // And `send` plays it back (looping), with its audio.
    let replay = Proc::spawn(&[
        "send",
        "--hub",
        &url,
        "--room",
        "t2",
        "--source",
        "replay",
        "--file",
        rec_str,
        "--audio",
        "--duration",
        "1.5",
    ]);
    let (status, out, err) = replay.finish();
    assert!(status.success(), "replay: {status}\n{out}\n{err}");
    assert!(out.contains("the recording's audio"), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with('[') && l.contains("kbit/s"))
        .unwrap_or_else(|| panic!("no stats line:\n{out}"));
    assert!(number_after(line, " pose ").unwrap() > 0.0, "{line}");
    std::fs::remove_file(&rec).unwrap();
}

#[test]
fn send_refuses_a_bad_room_name() {
    let hub = TestHub::dev();
    let url = hub.url();
    let send = Proc::spawn(&[
        "send",
        "--hub",
        &url,
        "--room",
        "bad name!",
        "--duration",
        "1",
    ]);
    let (status, stdout, stderr) = send.finish();
    assert_eq!(
        status.code(),
        Some(2),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("invalid room name") && stderr.contains("bad name!"),
        "{stderr}"
    );
}

#[test]
fn send_needs_a_recording_to_replay() {
    let missing = temp_path("missing.rec");
    let send = Proc::spawn(&[
        "send",
        "--room",
        "t",
        "--source",
        "replay",
        "--file",
        missing.to_str().unwrap(),
    ]);
    let (status, _, stderr) = send.finish();
    assert!(!status.success());
    assert!(stderr.contains("missing.rec"), "{stderr}");

    let garbage = temp_path("garbage.rec");
    std::fs::write(&garbage, b"not a recording at all").unwrap();
    let send = Proc::spawn(&[
        "send",
        "--room",
        "t",
        "--source",
        "replay",
        "--file",
        garbage.to_str().unwrap(),
    ]);
    let (status, _, stderr) = send.finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a poselink recording"), "{stderr}");
    std::fs::remove_file(&garbage).unwrap();
}

/// The sender's summary figure after `key` (e.g. "audio chunks ").
fn summary_number(out: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.contains("summary:"))
        .unwrap_or_else(|| panic!("no summary in:\n{out}"));
    number_after(line, key).unwrap_or_else(|| panic!("no {key:?} in {line}")) as u64
}

/// `watch --record` across a hub restart: the sender comes back under a new
/// member id (its way back held shut until the watcher is in the room again:
/// the hub relays to the members present), and the recording keeps following
/// it by its stream id — it holds every audio chunk the sender sent, once
/// (its replays removed).
#[test]
fn watch_records_its_sender_across_a_hub_restart() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let hub = TestHub::dev();
    let addr = hub.addr;
    let open = Arc::new(AtomicBool::new(true));
    let via = crate::common::forwarder(addr, Arc::clone(&open));
    let rec = temp_path("watch-restart.rec");
    let rec_str = rec.to_str().unwrap();
    let mut watch = Proc::spawn(&[
        "watch",
        "--hub",
        &format!("ws://{addr}/"),
        "--room",
        "r",
        "--duration",
        "6",
        "--record",
        rec_str,
    ]);
    watch.wait_line("members:");
    let send = Proc::spawn(&[
        "send",
        "--hub",
        &format!("ws://{via}/"),
        "--room",
        "r",
        "--fps",
        "30",
        "--audio",
        "--duration",
        "4",
    ]);
    std::thread::sleep(Duration::from_millis(1_500));
    open.store(false, Ordering::Release);
    hub.stop();
    std::thread::sleep(Duration::from_millis(500));
    let hub2 = TestHub::start(poselink::hub::HubConfig {
        listen: addr,
        ..poselink::hub::HubConfig::local_dev()
    });
    // The watcher is back in the room: its member list is printed again.
    watch.wait_line("members:");
    open.store(true, Ordering::Release);

    let (status, send_out, send_err) = send.finish();
    assert!(status.success(), "send: {status}\n{send_out}\n{send_err}");
    let (status, watch_out, watch_err) = watch.finish();
    assert!(
        status.success(),
        "watch: {status}\n{watch_out}\n{watch_err}"
    );
    drop(hub2);
    // Chunks written, replays included, and the replays.
    let sent =
        summary_number(&send_out, "audio chunks ") - summary_number(&send_out, "submitted (");
    let mut src = ReplaySource::open(&rec).expect("the recording opens");
    let mut block = AudioBlock::zeroed();
    let mut recorded = 0u64;
    while src.next_audio(&mut block).is_ok() {
        recorded += 1;
    }
    assert!(
        send_out.contains("reconnects 1"),
        "the sender reconnected:\n{send_out}"
    );
    assert!(sent >= 150, "{send_out}");
    assert_eq!(
        recorded, sent,
        "every chunk the sender sent recorded once\nsend:\n{send_out}\nwatch:\n{watch_out}"
    );
}

#[test]
fn send_and_watch_take_several_hubs() {
    // The first hub listens nowhere: the engine fails over to the second.
    let hub = TestHub::dev();
    let url = hub.url();
    let send = Proc::spawn(&[
        "send",
        "--hub",
        "ws://127.0.0.1:1/",
        "--hub",
        &url,
        "--room",
        "several",
        "--duration",
        "1",
    ]);
    let (status, stdout, stderr) = send.finish();
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains(&format!("joined room \"several\" on {url}")),
        "{stdout}"
    );
    // A list mixing ws:// and wss:// is a usage error that says so.
    let watch = Proc::spawn(&[
        "watch",
        "--hub",
        &format!("{url},wss://127.0.0.1:1/"),
        "--room",
        "several",
        "--duration",
        "1",
    ]);
    let (status, _, stderr) = watch.finish();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mixes ws:// and wss://"), "{stderr}");
}
