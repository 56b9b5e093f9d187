//! JSON mode on a real hub: a client that asks for the `poselink.json` subprotocol
//! speaks JSON text; an edge engine in the same room speaks binary; each gets the
//! other's pose (values within the quantisation bound) and audio (exact), and bad
//! JSON is answered with an error saying what is wrong. Every wait is bounded.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{TestHub, assert_close};
use poselink::engine::{EdgeEngine, EngineConfig, Event, Priority};
use poselink::proto::{AudioChunk, PoseFrame, Role};
use poselink_hal::{PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocket;
use tungstenite::{Message as Ws, client};

const T: Duration = Duration::from_secs(10);

struct JsonClient {
    ws: WebSocket<TcpStream>,
}

impl JsonClient {
    fn connect(hub: &TestHub) -> (JsonClient, Option<String>) {
        let stream = TcpStream::connect(hub.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut req = hub.url().into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "poselink.json".parse().unwrap());
        let (ws, resp) = client(req, stream).expect("upgrade");
        let proto = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string());
        (JsonClient { ws }, proto)
    }

    fn send(&mut self, v: Value) {
        self.ws.send(Ws::Text(v.to_string().into())).unwrap();
    }

    /// The next JSON message of `ty` (others skipped), within the timeout.
    fn next(&mut self, ty: &str) -> Value {
        let end = Instant::now() + T;
        while Instant::now() < end {
            match self.ws.read() {
                Ok(Ws::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).expect("the hub sends JSON");
                    if v["type"] == ty {
                        return v;
                    }
                }
                Ok(Ws::Binary(_)) => panic!("a JSON client got a binary message"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("waiting for {ty}: {e}"),
            }
        }
        panic!("no {ty} message within {T:?}");
    }
}

fn landmarks_json(f: &PoseFrame) -> Value {
    Value::Array(
        f.landmarks
            .iter()
            .map(|l| {
                json!({"x": l.x, "y": l.y, "z": l.z, "visibility": l.visibility, "presence": l.presence})
            })
            .collect(),
    )
}

fn synthetic(seed: u64, n: usize) -> Vec<PoseFrame> {
    let mut src = SyntheticPose::new(SyntheticConfig {
        seed,
        ..SyntheticConfig::default()
    });
    let mut s = PoseSample::zeroed();
    (0..n)
        .map(|i| {
            src.next_pose(&mut s).unwrap();
            let mut f = PoseFrame::from_arrays(i as u32 + 1, 0, 1_000 + i as u64, &s.landmarks);
            f.clamp_to_range();
            f
        })
        .collect()
}

#[test]
fn json_and_binary_members_share_a_room() {
    let hub = TestHub::dev();
    let (mut js, proto) = JsonClient::connect(&hub);
    assert_eq!(
        proto.as_deref(),
        Some("poselink.json"),
        "the hub names the subprotocol"
    );
    js.send(json!({"type": "hello", "client": "json-test"}));
    let welcome = js.next("welcome");
    assert!(welcome["member"].as_u64().unwrap() > 0, "{welcome}");
    js.send(json!({"type": "join", "room": "mix", "role": "member"}));
    let snap = js.next("room_snapshot");
    assert_eq!(snap["room"], "mix");
    assert_eq!(snap["your_role"], "member");

    let (engine, thread) = EdgeEngine::start(EngineConfig {
        hub: hub.url(),
        ..EngineConfig::default()
    })
    .unwrap();
    let room = engine.join_room("mix", Role::Member).unwrap();
    let joined = js.next("member_joined");
    assert_eq!(joined["room"], "mix");
    let engine_member = joined["member"]["member"].as_u64().unwrap();

    // Binary → JSON: keyframe and deltas, decoded by the hub. Pose is lossy
    // by design (a frame the engine's loop has not sent when the next comes
    // is replaced by it, counted): every frame that left must arrive, in
    // order, translated exactly.
    let frames = synthetic(3, 40);
    for f in &frames {
        engine.send_pose(f, room, Priority::NORMAL).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = engine.metrics();
        let done = m.poses_sent + m.drops_superseded + m.drops_stale + m.drops_ring;
        if done >= frames.len() as u64 || Instant::now() > deadline {
            break m;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        m.poses_sent + m.drops_superseded + m.drops_stale + m.drops_ring,
        frames.len() as u64,
        "every frame sent or counted as replaced: {m:?}"
    );
    assert!(m.poses_sent >= 20, "the translation was exercised: {m:?}");
    let mut last = 0;
    for _ in 0..m.poses_sent {
        let p = js.next("pose");
        assert_eq!(p["room"], "mix");
        assert_eq!(p["sender"].as_u64().unwrap(), engine_member);
        let seq = p["seq"].as_u64().unwrap();
        assert!(seq > last, "in order: {seq} after {last}");
        last = seq;
        let f = frames
            .iter()
            .find(|f| u64::from(f.seq) == seq)
            .expect("a frame the engine sent");
        assert_eq!(p["timestamp_us"].as_u64().unwrap(), f.capture_ts_us);
        assert_close(&p["landmarks"], f);
    }
    assert_eq!(
        last,
        u64::from(frames[frames.len() - 1].seq),
        "the newest frame is never replaced"
    );
    let mut chunk = AudioChunk::silence(16_000, 1, 320);
    for (k, s) in chunk.samples[..320].iter_mut().enumerate() {
        *s = (k as i16 - 160) * 100;
    }
    chunk.seq = 1;
    chunk.capture_ts_us = 5_000;
    engine.send_audio(&chunk, room, Priority::HIGH).unwrap();
    let a = js.next("audio");
    assert_eq!(a["sample_rate"], 16_000);
    let samples: Vec<i64> = a["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let want: Vec<i64> = chunk.samples[..320].iter().map(|&s| s.into()).collect();
    assert_eq!(samples, want, "audio samples exact");

    // JSON → binary: the engine decodes what the JSON client published.
    while engine.poll_event().is_some() {}
    let mine = synthetic(9, 5);
    for f in &mine {
        js.send(json!({
            "type": "pose", "room": "mix", "seq": f.seq, "timestamp_us": f.capture_ts_us,
            "landmarks": landmarks_json(f),
        }));
    }
    js.send(
        json!({"type": "audio", "room": "mix", "seq": 1, "sample_rate": 16000,
                   "samples": (0..320).map(|k| k * 3 - 400).collect::<Vec<i32>>()}),
    );
    let mut got = Vec::new();
    let mut audio = None;
    let end = Instant::now() + T;
    while (got.len() < mine.len() || audio.is_none()) && Instant::now() < end {
        match engine.wait_event(Duration::from_millis(50)) {
            Some(Event::Pose { frame, sender, .. }) => {
                assert_eq!(u64::from(sender), welcome["member"].as_u64().unwrap());
                got.push(frame);
            }
            Some(Event::Audio { chunk, .. }) => audio = Some(chunk),
            _ => {}
        }
    }
    assert_eq!(got.len(), mine.len(), "every JSON pose arrived as binary");
    for (g, want) in got.iter().zip(&mine) {
        assert_eq!((g.seq, g.capture_ts_us), (want.seq, want.capture_ts_us));
        assert_close(&landmarks_json(g), want);
    }
    let audio = audio.expect("the JSON audio chunk arrived");
    let want: Vec<i16> = (0..320).map(|k| (k * 3 - 400) as i16).collect();
    assert_eq!(&audio.samples[..audio.len as usize], &want[..]);

    // The hub acknowledges the JSON client's audio, in JSON.
    let ack = js.next("ack");
    assert_eq!(
        (ack["kind"].as_str(), ack["seq"].as_u64()),
        (Some("audio"), Some(1))
    );

    engine.shutdown();
    thread.join().unwrap();
    let left = js.next("member_left");
    assert_eq!(left["member"].as_u64().unwrap(), engine_member);
}

#[test]
fn bad_json_is_answered_with_a_reason_and_the_session_goes_on() {
    let hub = TestHub::dev();
    let (mut js, _) = JsonClient::connect(&hub);
    js.send(json!({"type": "hello"}));
    js.next("welcome");
    for (bad, says) in [
        (json!({"type": "dance"}), "unknown message type"),
        (json!({"room": "x"}), "needs a \"type\""),
        (
            json!({"type": "pose", "room": "nowhere", "landmarks": []}),
            "join it first",
        ),
        (
            json!({"type": "join", "room": "r", "role": "emperor"}),
            "unknown role",
        ),
    ] {
        js.send(bad.clone());
        let e = js.next("error");
        assert_eq!(e["name"], "bad_message", "{bad}: {e}");
        assert!(e["reason"].as_str().unwrap().contains(says), "{bad}: {e}");
    }
    js.ws.send(Ws::Text("{not json".into())).unwrap();
    let e = js.next("error");
    assert!(
        e["reason"].as_str().unwrap().contains("not valid JSON"),
        "{e}"
    );
    // Still a working session.
    js.send(json!({"type": "join", "room": "r", "role": "viewer"}));
    assert_eq!(js.next("room_snapshot")["your_role"], "viewer");
    // A viewer may not publish: the hub's own refusal, in JSON.
    let f = synthetic(1, 1);
    js.send(json!({"type": "pose", "room": "r", "landmarks": landmarks_json(&f[0])}));
    let e = js.next("error");
    assert_eq!(
        (e["name"].as_str(), e["about"].as_str()),
        (Some("forbidden"), Some("pose"))
    );
}
