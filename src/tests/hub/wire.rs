//! What arrives on the wire, in simulation: flood limits, WebSocket framing
//! (fragments, control frames between them, violations, the close handshake),
//! and JSON mode at the core's edges.

use serde_json::{Value, json};

use crate::hub::{DropReason, Fault, HubConfig};
use crate::proto::{Header, Hello, Kind, LeaveReason, Message, Ping, Role, encode_control};
use crate::ws::FrameKind;

use super::util::{Frame, Poses, Sim, config};

const BAD_MESSAGE: u16 = 1;
const RATE_LIMITED: u16 = 12;
const OVERSIZE: u16 = 13;

fn ping_msg(t0: u64) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let n = encode_control(
        &Header::new(Kind::Ping, 0, 0, 1, 0),
        &Message::Ping(Ping { t0_us: t0 }),
        &mut buf,
    )
    .unwrap();
    buf.truncate(n);
    buf
}

fn pongs(frames: &[Frame]) -> Vec<u64> {
    frames
        .iter()
        .filter_map(|f| {
            f.with(|m| match m {
                Message::Pong(p) => Some(p.t0_us),
                _ => None,
            })
            .flatten()
        })
        .collect()
}

/// Over the rate limit messages are refused (an error at most once a second);
/// more than `flood_close_messages` refusals within the flood window close the
/// connection with 4012, however many messages passed between them. The
/// others are not affected.
#[test]
fn a_flood_is_rate_limited_then_closed_with_4012() {
    let mut sim = Sim::new(HubConfig {
        rate_messages: 50,
        burst_messages: 10,
        flood_close_messages: 20,
        ..config()
    });
    let (f, _) = sim.member_of("flood", Role::Member);
    let (w, _) = sim.member_of("flood", Role::Owner);
    sim.take(f);
    sim.take(w);
    // hello and join took 2 of the burst of 10: 8 pass, 20 are refused.
    for t0 in 1..=28 {
        sim.send_bytes(f, &ping_msg(t0));
    }
    let frames = sim.take(f);
    assert_eq!(
        pongs(&frames),
        (1..=8).collect::<Vec<_>>(),
        "the burst passes"
    );
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors.len(), 1, "one error a second: {errors:?}");
    assert_eq!(errors[0].0, RATE_LIMITED);
    assert!(!sim.peers[f].shut, "20 refusals, not yet over 20");
    // 20 ms later one message's worth has come back: it passes...
    sim.advance(20);
    sim.send_bytes(f, &ping_msg(100));
    assert_eq!(pongs(&sim.take(f)), [100]);
    // ...but the refusals are counted over the window, not in a row: one more
    // closes the connection.
    sim.send_bytes(f, &ping_msg(200));
    let frames = sim.take(f);
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].2.contains("flood_close_messages = 20"),
        "the reason names the limit: {errors:?}"
    );
    assert!(
        matches!(frames.last(), Some(Frame::Close(4012, _))),
        "{frames:?}"
    );
    assert_eq!(sim.core.stats().drops_of(DropReason::RateLimited), 20 + 1);
    // The watcher hears of it, and goes on.
    let left = sim.take(w).iter().find_map(|f| {
        f.with(|m| match m {
            Message::MemberLeft(l) => Some(l.reason),
            _ => None,
        })
        .flatten()
    });
    assert_eq!(left, Some(LeaveReason::Disconnected));
    sim.send_bytes(w, &ping_msg(7));
    assert_eq!(pongs(&sim.take(w)), [7]);
}

/// Issue #17's flooder: three times the message rate, so that one message in
/// three passes and no run of refusals ever grows long (counted in a row, it was
/// never closed). Counted over the window it is closed with 4012 within a second
/// of simulated time from when it went over, while an honest publisher and its
/// viewer in the same room lose nothing. Once over its rate, the driver is told
/// to read the flooder sparingly.
#[test]
fn a_flooder_that_lets_messages_through_is_closed_within_a_second() {
    let mut sim = Sim::dev(); // 1000 messages/s, burst 500; close past 1000 a second
    let (flooder, _) = sim.member_of("gym", Role::Member);
    let (publisher, h) = sim.member_of("gym", Role::Member);
    let (viewer, _) = sim.member_of("gym", Role::Viewer);
    let member = sim.peers[publisher].member;
    for p in [flooder, publisher, viewer] {
        sim.take(p);
    }
    let budget = sim.core.config().read_budget;
    assert_eq!(
        sim.core.read_budget(sim.now, sim.peers[flooder].conn),
        budget
    );
    let mut poses = Poses::new(10);
    let mut sent = Vec::new();
    let mut first_refusal_ms = None;
    let mut closed_at_ms = None;
    let mut throttled = false;
    // 2 s of simulated time in 1 ms steps: 3 pings a ms from the flooder, a pose
    // every 33 ms from the publisher.
    for ms in 1..=2_000u64 {
        sim.now += 1_000;
        if sim.core.poll_timeout().is_some_and(|t| sim.now >= t) {
            sim.core.handle_timeout(sim.now);
        }
        if closed_at_ms.is_none() {
            let burst: Vec<u8> = (0..3)
                .flat_map(|k| {
                    let m = ping_msg(ms * 10 + k);
                    sim.frame(flooder, FrameKind::Binary, true, &m)
                })
                .collect();
            sim.write(flooder, &burst);
            if first_refusal_ms.is_none() && sim.core.stats().drops_of(DropReason::RateLimited) > 0
            {
                first_refusal_ms = Some(ms);
                throttled = sim.core.read_budget(sim.now, sim.peers[flooder].conn) < budget;
            }
            if sim.peers[flooder].shut || sim.peers[flooder].closed {
                closed_at_ms = Some(ms);
            }
        }
        if ms % 33 == 0 {
            let m = poses.next(h, member);
            sim.send_bytes(publisher, &m);
            sent.push(m);
        }
    }
    let first = first_refusal_ms.expect("the flooder goes over its rate");
    let closed = closed_at_ms.expect("the flooder is closed");
    assert!(
        closed - first <= 1_000,
        "over the rate from {first} ms, closed at {closed} ms"
    );
    assert!(
        throttled,
        "once over its rate the flooder is read sparingly"
    );
    let frames = sim.take(flooder);
    let passed = pongs(&frames).len();
    assert!(
        passed > 500,
        "messages kept passing during the flood: {passed}"
    );
    let close = frames.iter().find_map(|f| match f {
        Frame::Close(code, why) => Some((*code, why.clone())),
        _ => None,
    });
    assert_eq!(close.as_ref().map(|c| c.0), Some(4012), "{close:?}");
    let why = frames
        .iter()
        .filter_map(Frame::error)
        .map(|e| e.2)
        .next_back()
        .unwrap();
    assert!(why.contains("flood_close_messages = 1000"), "{why}");
    // The honest pair: every pose, in order, and never a refusal.
    let got: Vec<Vec<u8>> = sim
        .take(viewer)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Msg(b) if f_kind(&b) == Kind::Pose => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 60);
    assert_eq!(got, sent, "the viewer gets every pose");
    assert!(sim.take_errors(publisher).is_empty());
}

fn f_kind(bytes: &[u8]) -> Kind {
    crate::proto::Packet::new_checked(bytes)
        .unwrap()
        .header()
        .kind
}

/// A hello in three fragments with a ping between them is assembled; the ping
/// is answered first.
#[test]
fn a_fragmented_hello_with_a_ping_between_is_assembled() {
    let mut sim = Sim::dev();
    let p = sim.connect();
    let mut hello = vec![0u8; 256];
    let msg = Message::Hello(Hello {
        minor: 0,
        token: "",
        resume: 0,
        client: "fragments",
        stream: 0,
    });
    let n = encode_control(&Header::new(Kind::Hello, 0, 0, 1, 0), &msg, &mut hello).unwrap();
    hello.truncate(n);
    let (a, rest) = hello.split_at(5);
    let (b, c) = rest.split_at(7);
    let mut bytes = sim.frame(p, FrameKind::Binary, false, a);
    bytes.extend(sim.frame(p, FrameKind::Continuation, false, b));
    bytes.extend(sim.frame(p, FrameKind::Ping, true, b"between"));
    bytes.extend(sim.frame(p, FrameKind::Continuation, true, c));
    // Delivered a few bytes at a time.
    for chunk in bytes.chunks(3) {
        sim.feed(p, chunk);
    }
    sim.pump();
    let frames = sim.take(p);
    assert!(
        matches!(&frames[0], Frame::Pong(b) if b == b"between"),
        "{frames:?}"
    );
    assert_eq!(frames[1].kind(), Some(Kind::Welcome), "{frames:?}");
}

/// Framing violations get an error saying what, and the right close code.
#[test]
fn websocket_violations_close_with_their_codes() {
    let mut sim = Sim::dev();
    // An unmasked frame: 1002.
    let p = sim.session();
    let ping = ping_msg(1);
    let mut unmasked = vec![0x82, ping.len() as u8];
    unmasked.extend_from_slice(&ping);
    sim.write(p, &unmasked);
    let frames = sim.take(p);
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors[0].0, BAD_MESSAGE, "{errors:?}");
    assert!(errors[0].2.contains("masked"), "{errors:?}");
    assert!(
        matches!(frames.last(), Some(Frame::Close(1002, _))),
        "{frames:?}"
    );

    // A message over max_message: 1009, refused on its header alone.
    let p = sim.session();
    let mut head = sim.frame(p, FrameKind::Binary, true, &vec![0u8; 70_000]);
    head.truncate(14);
    sim.write(p, &head);
    let frames = sim.take(p);
    let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
    assert_eq!(errors[0].0, OVERSIZE, "{errors:?}");
    assert!(
        matches!(frames.last(), Some(Frame::Close(1009, _))),
        "{frames:?}"
    );
    assert_eq!(sim.core.stats().faults_of(Fault::WebSocket), 2);

    // A text message to a binary session: an error, and the session goes on.
    let p = sim.session();
    let text = sim.frame(p, FrameKind::Text, true, b"{\"type\":\"ping\"}");
    sim.write(p, &text);
    assert_eq!(sim.take_errors(p)[0].0, BAD_MESSAGE);
    assert_eq!(sim.core.stats().faults_of(Fault::TextMessage), 1);
    sim.send_bytes(p, &ping_msg(3));
    assert_eq!(pongs(&sim.take(p)), [3]);
}

/// The peer closes: its code is echoed, the write half shut, and when the peer
/// hangs up the session ends as "disconnected".
#[test]
fn a_close_from_the_peer_is_echoed_and_ends_the_session() {
    let mut sim = Sim::dev();
    let (w, _) = sim.member_of("bye", Role::Owner);
    let (p, _) = sim.member_of("bye", Role::Member);
    let member = sim.peers[p].member;
    sim.take(w);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"done");
    let close = sim.frame(p, FrameKind::Close, true, &payload);
    sim.write(p, &close);
    assert_eq!(sim.close_of(p), Some((1000, String::new())));
    assert!(sim.peers[p].shut);
    let left = sim.take(w).iter().find_map(|f| {
        f.with(|m| match m {
            Message::MemberLeft(l) => Some((l.member, l.reason)),
            _ => None,
        })
        .flatten()
    });
    assert_eq!(left, Some((member, LeaveReason::Disconnected)));
    // Bytes after the close are read and dropped; the peer's end frees the slot.
    let more = sim.frame(p, FrameKind::Binary, true, &ping_msg(1));
    sim.write(p, &more);
    assert!(sim.take(p).is_empty());
    let open = sim.core.connections();
    sim.hang_up(p);
    assert_eq!(sim.core.connections(), open - 1);
    // A close code that may not be sent is a protocol error.
    let q = sim.session();
    let bad = sim.frame(q, FrameKind::Close, true, &1004u16.to_be_bytes());
    sim.write(q, &bad);
    assert_eq!(sim.close_of(q).map(|c| c.0), Some(1002));
}

/// JSON mode: a JSON client's messages become binary ones at the edge, and what
/// it is sent becomes JSON, pose decoded by the hub.
#[test]
fn a_json_client_shares_a_room_with_binary_members() {
    let mut sim = Sim::dev();
    let (b, h) = sim.member_of("mix", Role::Member);
    let j = sim.connect_with(true);
    let send_json = |sim: &mut Sim, v: Value| {
        let f = sim.frame(j, FrameKind::Text, true, v.to_string().as_bytes());
        sim.write(j, &f);
    };
    let texts = |sim: &mut Sim| -> Vec<Value> {
        sim.take(j)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Text(t) => Some(serde_json::from_str(&t).unwrap()),
                _ => None,
            })
            .collect()
    };
    send_json(&mut sim, json!({"type": "hello"}));
    let got = texts(&mut sim);
    assert_eq!(got[0]["type"], "welcome", "{got:?}");
    let jm = got[0]["member"].as_u64().unwrap() as u16;
    send_json(
        &mut sim,
        json!({"type": "join", "room": "mix", "role": "member"}),
    );
    let got = texts(&mut sim);
    assert_eq!(got[0]["type"], "room_snapshot", "{got:?}");
    assert_eq!(got[0]["members"].as_array().unwrap().len(), 2);

    // A binary member's pose reaches the JSON client decoded.
    let mut poses = Poses::new(1_000);
    let mb = sim.peers[b].member;
    for _ in 0..3 {
        let m = poses.next(h, mb);
        sim.send_bytes(b, &m);
    }
    let got = texts(&mut sim);
    let seqs: Vec<u64> = got
        .iter()
        .filter(|v| v["type"] == "pose")
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3], "keyframe and deltas, decoded: {got:?}");
    assert_eq!(got[0]["landmarks"].as_array().unwrap().len(), 33);
    assert_eq!(got[0]["room"], "mix");

    // The JSON client's pose reaches the binary member as a pose message.
    let lm: Vec<Value> = (0..33)
        .map(|k| json!({"x": k as f64 / 40.0, "y": 0.5}))
        .collect();
    send_json(
        &mut sim,
        json!({"type": "pose", "room": "mix", "landmarks": lm}),
    );
    let got = sim.next_msg(b, |k| k == Kind::Pose).expect("relayed");
    let hd = got.header().unwrap();
    assert_eq!((hd.sender, hd.room, hd.seq), (jm, h, 1));

    // A message it cannot translate is explained; the session goes on.
    send_json(&mut sim, json!({"type": "dance"}));
    let got = texts(&mut sim);
    assert_eq!(got[0]["type"], "error", "{got:?}");
    assert!(
        got[0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown message type")
    );
    assert!(!sim.peers[j].shut);
}

/// The JSON texts among what peer `p` got (the rest is dropped).
fn json_texts(sim: &mut Sim, p: usize) -> Vec<Value> {
    sim.take(p)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Text(t) => Some(serde_json::from_str(&t).unwrap()),
            _ => None,
        })
        .collect()
}

/// A malformed close frame is a protocol error: an error saying what is wrong
/// comes first, then the close frame with 1002 (or 1007 for a reason that is
/// not UTF-8). A valid code is echoed, with no error.
#[test]
fn malformed_close_frames_get_an_error_then_1002_or_1007() {
    let mut sim = Sim::dev();
    let with_code = |code: u16, reason: &[u8]| {
        let mut v = code.to_be_bytes().to_vec();
        v.extend_from_slice(reason);
        v
    };
    let mut cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (vec![0x03], 1002, "payload of 1 byte"),
        (with_code(1000, b"ok \xff\xfe"), 1007, "not valid UTF-8"),
    ];
    for code in [0, 999, 1004, 1005, 1006, 1015, 2000, 2999, 5000, 65535] {
        cases.push((with_code(code, b""), 1002, "may not be sent by a peer"));
    }
    for (payload, want_close, want_reason) in &cases {
        let p = sim.session();
        let f = sim.frame(p, FrameKind::Close, true, payload);
        sim.write(p, &f);
        let frames = sim.take(p);
        let errors: Vec<_> = frames.iter().filter_map(Frame::error).collect();
        assert_eq!(errors.len(), 1, "{payload:?}: {frames:?}");
        assert_eq!(errors[0].0, BAD_MESSAGE, "{payload:?}");
        assert!(errors[0].2.contains(want_reason), "{payload:?}: {errors:?}");
        assert!(errors[0].2.contains("RFC 6455"), "{errors:?}");
        match frames.last() {
            Some(Frame::Close(code, why)) => {
                assert_eq!(code, want_close, "{payload:?}");
                assert!(why.contains(want_reason), "{why}");
            }
            other => panic!("{payload:?}: no close last: {other:?}"),
        }
        sim.hang_up(p);
    }
    assert_eq!(
        sim.core.stats().faults_of(Fault::WebSocket),
        cases.len() as u64
    );
    for code in [1000, 1001, 1003, 1007, 1014, 3000, 4999] {
        let p = sim.session();
        let f = sim.frame(
            p,
            FrameKind::Close,
            true,
            &with_code(code, "bye ✓".as_bytes()),
        );
        sim.write(p, &f);
        let frames = sim.take(p);
        assert!(frames.iter().all(|f| f.error().is_none()), "{frames:?}");
        assert!(
            matches!(frames.last(), Some(Frame::Close(c, _)) if *c == code),
            "{code}: {frames:?}"
        );
        sim.hang_up(p);
    }
}

/// Text that is not UTF-8 fails the connection with 1007 (RFC 6455 §8.1), after
/// an error, for a JSON client and a binary one alike; the check is on the
/// whole message, so a character split over two fragments is fine.
#[test]
fn text_that_is_not_utf8_is_refused_and_closed_with_1007() {
    let mut sim = Sim::dev();
    // A JSON client, before and after its hello; a binary session.
    let before = sim.connect_with(true);
    let after = sim.connect_with(true);
    let f = sim.frame(after, FrameKind::Text, true, br#"{"type":"hello"}"#);
    sim.write(after, &f);
    assert_eq!(json_texts(&mut sim, after)[0]["type"], "welcome");
    let binary = sim.session();
    for p in [before, after, binary] {
        let f = sim.frame(
            p,
            FrameKind::Text,
            true,
            b"{\"type\":\"ping\",\"x\":\"\xc3\x28\"}",
        );
        sim.write(p, &f);
        let frames = sim.take(p);
        let error = frames
            .iter()
            .find_map(|f| match f {
                Frame::Text(t) => {
                    Some(serde_json::from_str::<Value>(t).unwrap()["reason"].to_string())
                }
                f => f.error().map(|e| e.2),
            })
            .unwrap_or_else(|| panic!("no error: {frames:?}"));
        assert!(error.contains("not valid UTF-8"), "{error}");
        assert!(
            matches!(frames.last(), Some(Frame::Close(1007, _))),
            "{frames:?}"
        );
    }
    // "é" (c3 a9) split over two fragments is one valid message.
    let j = sim.connect_with(true);
    let text = "{\"type\":\"hello\",\"client\":\"caf\u{e9}\"}".as_bytes();
    let cut = text.iter().position(|&b| b == 0xc3).unwrap() + 1;
    let mut bytes = sim.frame(j, FrameKind::Text, false, &text[..cut]);
    bytes.extend(sim.frame(j, FrameKind::Continuation, true, &text[cut..]));
    sim.write(j, &bytes);
    assert_eq!(json_texts(&mut sim, j)[0]["type"], "welcome");
}

/// A malformed first message from a JSON client ends the connection as a
/// binary client's does: the error (`bad_message`, with the reason), then 4001.
/// After the hello, a malformed message is refused and the session goes on.
#[test]
fn a_malformed_first_json_message_is_refused_and_closed_with_4001() {
    let mut sim = Sim::dev();
    let long_token = json!({"type": "hello", "token": "t".repeat(3000)}).to_string();
    for (text, want) in [
        ("{".to_string(), "not valid JSON"),
        (json!({"type": "dance"}).to_string(), "unknown message type"),
        (
            json!({"type": "hello", "minor": 300}).to_string(),
            "\"minor\" is 300",
        ),
        (long_token, "token"),
    ] {
        let p = sim.connect_with(true);
        let f = sim.frame(p, FrameKind::Text, true, text.as_bytes());
        sim.write(p, &f);
        let frames = sim.take(p);
        let Some(Frame::Text(t)) = frames.first() else {
            panic!("{text:.40}: no error first: {frames:?}")
        };
        let e: Value = serde_json::from_str(t).unwrap();
        assert_eq!(
            (e["type"].as_str(), e["name"].as_str()),
            (Some("error"), Some("bad_message"))
        );
        assert!(
            e["reason"].as_str().unwrap().contains(want),
            "{text:.40}: {e}"
        );
        assert!(
            matches!(frames.last(), Some(Frame::Close(4001, _))),
            "{text:.40}: {frames:?}"
        );
    }
    let p = sim.connect_with(true);
    let f = sim.frame(p, FrameKind::Text, true, br#"{"type":"hello"}"#);
    sim.write(p, &f);
    json_texts(&mut sim, p);
    let f = sim.frame(p, FrameKind::Text, true, b"{");
    sim.write(p, &f);
    let f = sim.frame(p, FrameKind::Text, true, br#"{"type":"ping","t0_us":7}"#);
    sim.write(p, &f);
    let frames = sim.take(p);
    assert!(
        frames.iter().all(|f| !matches!(f, Frame::Close(..))),
        "{frames:?}"
    );
    let types: Vec<Value> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Text(t) => Some(serde_json::from_str::<Value>(t).unwrap()["type"].clone()),
            _ => None,
        })
        .collect();
    assert_eq!(types, [json!("error"), json!("pong")]);
}

/// The warnings logged on this thread (a simulation runs on its test's thread,
/// so tests running beside it do not mix in).
mod captured {
    use std::cell::RefCell;

    thread_local! {
        static LINES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    struct Capture;

    impl log::Log for Capture {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.level() <= log::Level::Warn
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                LINES.with(|l| l.borrow_mut().push(r.args().to_string()));
            }
        }
        fn flush(&self) {}
    }

    static CAPTURE: Capture = Capture;

    /// Starts capturing (the logger is installed once per test binary).
    pub fn start() {
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
        assert!(
            log::max_level() >= log::LevelFilter::Warn,
            "another logger filters warnings out"
        );
        take();
    }

    /// The lines captured since the last call.
    pub fn take() -> Vec<String> {
        LINES.with(|l| core::mem::take(&mut *l.borrow_mut()))
    }
}

/// 300 malformed messages in a burst are refused one by one (300 counted; the
/// peer's answers are a sample, see `bad_bursts`), but the log gets a few lines and then, when the window
/// is over, one line with the count of the rest.
#[test]
fn a_burst_of_refusals_logs_a_few_lines_and_a_count() {
    captured::start();
    let mut sim = Sim::new(config());
    let p = sim.session();
    let _ = captured::take();
    let garbage = [
        0x10u8, 0x0c, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
    ];
    for _ in 0..6 {
        let mut bytes = Vec::new();
        for _ in 0..50 {
            bytes.extend(sim.frame(p, FrameKind::Binary, true, &garbage));
        }
        sim.write(p, &bytes);
    }
    assert_eq!(sim.core.stats().errors[1], 300, "every refusal is counted");
    let lines = captured::take();
    let refused = lines
        .iter()
        .filter(|l| l.contains("refused a message"))
        .count();
    assert_eq!(refused, 10, "{lines:#?}");
    // The housekeeping timer says the count once the window is over.
    sim.advance(10_100);
    let lines = captured::take();
    let counts: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("more refused messages"))
        .collect();
    assert_eq!(counts.len(), 1, "{lines:#?}");
    assert!(counts[0].contains("290 more"), "{}", counts[0]);
}

/// A refusal that quotes what a JSON client sent (an unknown type, a room, a
/// role) is cut to the protocol's reason length, never lost to it (found by
/// the `json_mode` fuzz target: past 256 bytes the error did not encode and
/// the client got no answer).
#[test]
fn a_json_refusal_quoting_a_long_string_is_cut_not_lost() {
    let mut sim = Sim::dev();
    let j = sim.connect_with(true);
    let hello = sim.frame(j, FrameKind::Text, true, br#"{"type":"hello"}"#);
    sim.write(j, &hello);
    assert_eq!(json_texts(&mut sim, j)[0]["type"], "welcome");
    let long = "x".repeat(240);
    for text in [
        format!(r#"{{"type":"{long}"}}"#),
        format!(r#"{{"type":"kick","room":"{long}","member":1}}"#),
        format!(r#"{{"type":"join","room":"r1","role":"{long}"}}"#),
    ] {
        let f = sim.frame(j, FrameKind::Text, true, text.as_bytes());
        sim.write(j, &f);
        let got = json_texts(&mut sim, j);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert_eq!(got[0]["type"], "error", "{got:?}");
        let reason = got[0]["reason"].as_str().unwrap();
        assert!(reason.len() <= 256 && reason.len() > 100, "{reason}");
    }
}
