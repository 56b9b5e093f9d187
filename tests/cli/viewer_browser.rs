//! The browser viewer in a real browser: a hub with an edge engine streaming the
//! synthetic skeleton (and audio) into a room, headless Chromium opening
//! `/view/<room>` from the hub, driven through the Chrome DevTools protocol. The
//! test checks that the page decodes frames, that the canvas shows something and
//! changes (the skeleton moves), and saves a screenshot as an artifact
//! (`target/tmp/viewer.png`). It runs once more over TLS: the hub with a
//! certificate from a test CA (pinned for Chromium by its key), the page at
//! `https://`, the viewer connecting with `wss://` by itself. Needs Chromium (`apt-get install chromium`; CI installs
//! it); without one the test fails saying so. Every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::{TestHub, TlsFiles};
use base64::Engine as _;
use poselink::engine::{EdgeEngine, EngineConfig, Priority};
use poselink::proto::{AudioChunk, AudioCodec, AudioEncoding, EncoderConfig, PoseFrame, Role};
use poselink_hal::{Clock, MonotonicClock, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use serde_json::{Value, json};
use tungstenite::Message as Ws;

const T: Duration = Duration::from_secs(20);

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name;
        }
    }
    panic!(
        "no Chromium found: install it (Debian: `apt-get install chromium`) to run the browser test"
    );
}

/// Kills the browser (and removes its profile) however the test ends.
struct Browser {
    child: Child,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A DevTools session on one page.
struct Page {
    ws: tungstenite::WebSocket<TcpStream>,
    next_id: u64,
}

impl Page {
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws.send(Ws::Text(msg.to_string().into())).unwrap();
        let end = Instant::now() + T;
        while Instant::now() < end {
            match self.ws.read() {
                Ok(Ws::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["id"] == id {
                        assert!(v.get("error").is_none(), "{method}: {v}");
                        return v["result"].clone();
                    }
                }
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("DevTools: {e}"),
            }
        }
        panic!("no answer to {method}");
    }

    /// Evaluates a JavaScript expression in the page; its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }
}

/// A GET to Chromium's DevTools HTTP endpoint (which keeps the connection open:
/// the body is read by its length).
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = Instant::now() + T;
    loop {
        let n = s.read(&mut chunk).expect("DevTools HTTP answer");
        assert!(n > 0 && Instant::now() < end, "DevTools HTTP closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length");
            if body.len() >= len {
                return body[..len].to_string();
            }
        }
    }
}

/// Streams the synthetic skeleton at 30 fps and audio into `room` until `stop`.
fn stream(
    url: String,
    ca_file: Option<String>,
    room: &'static str,
    audio: AudioEncoding,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (engine, thread) = EdgeEngine::start(EngineConfig {
            hub: url,
            ca_file,
            encoder: EncoderConfig {
                audio,
                ..EncoderConfig::default()
            },
            ..EngineConfig::default()
        })
        .unwrap();
        let r = engine.join_room(room, Role::Member).unwrap();
        let clock = MonotonicClock::new();
        let mut src = SyntheticPose::new(SyntheticConfig::default());
        let mut s = PoseSample::zeroed();
        let mut chunk = AudioChunk::silence(48_000, 1, 960);
        let mut seq = 0u32;
        let end = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            seq += 1;
            src.next_pose(&mut s).unwrap();
            let mut f = PoseFrame::from_arrays(seq, 0, clock.now_us(), &s.landmarks);
            f.clamp_to_range();
            engine.send_pose(&f, r, Priority::NORMAL).unwrap();
            for (k, x) in chunk.samples[..960].iter_mut().enumerate() {
                *x = ((k as f32 * 0.06).sin() * 9000.0) as i16;
            }
            chunk.seq = seq;
            chunk.capture_ts_us = clock.now_us();
            let _ = engine.send_audio(&chunk, r, Priority::HIGH);
            std::thread::sleep(Duration::from_millis(33));
        }
        engine.shutdown();
        thread.join().unwrap();
    })
}

#[test]
fn the_viewer_draws_the_moving_skeleton_in_chromium() {
    viewer_in_chromium(None, AudioEncoding::default());
}

#[test]
fn the_viewer_served_over_https_connects_with_wss() {
    viewer_in_chromium(Some(TlsFiles::local("viewer")), AudioEncoding::default());
}

/// The board's Opus audio (60 ms packets named at 16 kHz): the viewer decodes
/// it with WebCodecs and the member's meter shows its level.
#[cfg(feature = "opus")] // without it the engine sends PCM16
#[test]
fn the_viewer_decodes_opus_audio_and_shows_its_level() {
    viewer_in_chromium(None, AudioEncoding::board());
}

/// One browser at a time: two would starve each other on a small machine.
static ONE_BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn viewer_in_chromium(tls: Option<TlsFiles>, audio: AudioEncoding) {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let hub = match &tls {
        Some(files) => TestHub::start_tls(poselink::hub::HubConfig::local_dev(), files),
        None => TestHub::dev(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let ca_file = tls.as_ref().and_then(TlsFiles::ca);
    let publisher = stream(hub.url(), ca_file, "cam", audio, Arc::clone(&stop));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let codec_name = match audio.codec {
        AudioCodec::Pcm16 => "pcm16",
        AudioCodec::Opus => "opus",
    };
    // Chromium trusts the test CA's certificate by its key's hash (and nothing
    // else it would not trust anyway).
    let pin = tls.as_ref().map(|f| {
        let digest = ring::digest::digest(&ring::digest::SHA256, &f.spki_der);
        format!(
            "--ignore-certificate-errors-spki-list={}",
            base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
        )
    });

    let profile = std::env::temp_dir().join(format!(
        "poselink-chromium-{}-{scheme}-{codec_name}",
        std::process::id()
    ));
    let mut child = Command::new(chromium())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--remote-debugging-port=0",
            "--window-size=1024,700",
        ])
        .args(pin)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("{scheme}://{}/view/cam", hub.addr))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().unwrap();
    let browser = Browser { child, profile };
    // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let devtools = rx.recv_timeout(T).expect("Chromium's DevTools address");
    let host = devtools
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_string();

    // The viewer's page target.
    let end = Instant::now() + T;
    let page_ws = loop {
        let list: Value = serde_json::from_str(&http_get(&host, "/json/list")).unwrap();
        let found = list.as_array().unwrap().iter().find_map(|t| {
            (t["type"] == "page" && t["url"].as_str()?.contains("/view/cam"))
                .then(|| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
                .flatten()
        });
        if let Some(url) = found {
            break url;
        }
        assert!(Instant::now() < end, "no viewer page in {list}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let stream_ = TcpStream::connect(&host).unwrap();
    // A blocking handshake (bounded), then short reads for the calls' loops.
    stream_.set_read_timeout(Some(T)).unwrap();
    let (ws, _) = tungstenite::client(page_ws.as_str(), stream_).expect("DevTools session");
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut page = Page { ws, next_id: 0 };

    // Frames decoded, from a member, connected, no error.
    let end = Instant::now() + T;
    let state = loop {
        let v = page.eval("JSON.stringify(window.poselinkViewer || null)");
        let state: Value = serde_json::from_str(v.as_str().unwrap_or("null")).unwrap();
        if state["framesDecoded"].as_u64().unwrap_or(0) >= 45 {
            break state;
        }
        assert!(
            Instant::now() < end,
            "the viewer decoded too few frames: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state["connected"], true, "{state}");
    let hub_url = page.eval("window.poselinkViewer.hub");
    let expected = if tls.is_some() { "wss://" } else { "ws://" };
    assert!(
        hub_url.as_str().is_some_and(|u| u.starts_with(expected)),
        "the viewer chose {hub_url}"
    );
    assert_eq!(state["members"], 1, "{state}");
    assert!(state["lastError"].is_null(), "{state}");
    assert_eq!(page.eval("document.body.dataset.framesDecoded === String(window.poselinkViewer.framesDecoded) || Number(document.body.dataset.framesDecoded) > 0"), true);

    // The canvas is drawn on, and changes as the skeleton moves.
    let probe = "(() => { const c = document.getElementById('stage'); \
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
                 const bg = [d[0], d[1], d[2]]; let n = 0, h = 0; \
                 for (let i = 0; i < d.length; i += 4) { \
                   if (d[i] !== bg[0] || d[i+1] !== bg[1] || d[i+2] !== bg[2]) n++; \
                   h = (h * 31 + d[i] + 3 * d[i+1] + 7 * d[i+2]) >>> 0; } \
                 return [n, h, c.width, c.height]; })()";
    let a = page.eval(probe);
    std::thread::sleep(Duration::from_millis(600));
    let b = page.eval(probe);
    let drawn = a[0].as_u64().unwrap();
    assert!(a[2].as_u64().unwrap() > 100, "canvas size {a}");
    assert!(
        drawn > 200,
        "only {drawn} pixels differ from the background: {a}"
    );
    assert_ne!(a[1], b[1], "the canvas did not change in 600 ms: {a} {b}");

    // The audio is decoded and its level shown: the tone is about -14 dBFS.
    let codec = codec_name;
    let end = Instant::now() + T;
    loop {
        let v = page.eval(
            "JSON.stringify([window.poselinkViewer.audioCodec, window.poselinkViewer.audioDecoded, \
             document.querySelector('#members meter').value, \
             document.querySelector('#members .stats').textContent, \
             window.poselinkViewer.lastError])",
        );
        let got: Value = serde_json::from_str(v.as_str().unwrap_or("null")).unwrap();
        let level = got[2].as_f64().unwrap_or(0.0);
        if got[0] == codec && got[1].as_u64().unwrap_or(0) >= 10 && level > 0.5 {
            assert!(got[3].as_str().unwrap().contains("dBFS"), "{got}");
            assert!(got[4].is_null(), "{got}");
            break;
        }
        assert!(Instant::now() < end, "no {codec} audio level shown: {got}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // The screenshot, kept as the test's artifact.
    let shot = page.call("Page.captureScreenshot", json!({"format": "png"}));
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let name = match (&tls, audio.codec) {
        (Some(_), _) => "viewer-tls.png",
        (None, AudioCodec::Opus) => "viewer-opus.png",
        (None, AudioCodec::Pcm16) => "viewer.png",
    };
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());

    stop.store(true, Ordering::Relaxed);
    publisher.join().unwrap();
    drop(browser);
}
