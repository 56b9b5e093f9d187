//! The JSON-mode harness behind the fuzz target `json_mode`, shared with
//! `tests/protocol/props/` (included there with `#[path]`).
//!
//! [`run`] builds a small hub core (`poselink::hub::core::Core`, anonymous
//! access) on a simulated clock with two peers: a binary member that said
//! hello and joined room `r1`, and a JSON client (the `poselink.json`
//! subprotocol). The input's first byte chooses how the JSON client starts
//! (bit 0: its texts go as they are, even when not UTF-8, else made UTF-8;
//! bit 1: it says hello first; bit 2: it then joins `r1`); the rest is split
//! at newlines into texts, each sent as one masked WebSocket text frame, and
//! the hub's output delivered after each. Then the binary member pings the
//! hub; the JSON client hangs up; the binary member pings once more.
//! The fuzz target keeps one core across inputs ([`JsonHarness`]); the
//! property tests make a fresh one for each ([`run`]).
//! Whatever the texts, nothing may panic, and:
//!
//! - everything the hub sends the JSON client is a text frame (or a WebSocket
//!   ping, pong or close) holding a JSON object with a string `"type"`;
//! - a text that is not a JSON object with a string `"type"` naming a message
//!   JSON mode knows is answered with an `"error"`, or the connection is
//!   closed (see `must_refuse`);
//! - the binary member's every message is a valid protocol message (a pose
//!   relayed from the JSON client decodes: JSON poses are keyframes), and each
//!   of its pings is answered with its pong, whatever the JSON client does.

use std::io::IoSlice;
use std::net::SocketAddr;

use poselink::hub::HubConfig;
use poselink::hub::core::{Closed, ConnId, Core, Event};
use poselink::proto::{
    Header, Hello, Join, Kind, MAX_PLAIN_PAYLOAD, Message, Packet, Ping, PoseDecoder, Role,
    encode_control,
};
use poselink::ws::{self, FrameKind, Parsed};

/// The monotonic time a run starts at, µs.
const T0: u64 = 10_000_000;
/// The Unix time then, µs.
const UNIX: u64 = 1_800_000_000_000_000;
/// Texts sent from one input at most.
pub const MAX_TEXTS: usize = 32;
/// Delivery rounds after one input at most.
const MAX_ROUNDS: usize = 64;
/// The message types JSON mode takes from a client.
const TYPES: [&str; 10] = [
    "hello",
    "join",
    "leave",
    "pose",
    "audio",
    "kick",
    "set_role",
    "role_changed",
    "close_room",
    "ping",
];

/// The hub: 4 connections, 2 rooms, rate limits out of reach (a message over
/// them is dropped with an error at most once a second: the rate limiter is
/// not what this harness is about).
pub fn config() -> HubConfig {
    HubConfig {
        max_connections: 4,
        max_rooms: 2,
        max_members: 4,
        queue_depth: 8,
        keyframe_slots: 4,
        rate_messages: 1_000_000,
        burst_messages: 1_000_000,
        rate_bytes: 1 << 30,
        burst_bytes: 1 << 30,
        ..HubConfig::local_dev()
    }
}

/// One simulated peer.
struct Peer {
    conn: ConnId,
    json: bool,
    /// Bytes the hub sent, not yet parsed.
    inbox: Vec<u8>,
    /// The core closed the connection or asked for its shutdown.
    closed: bool,
    /// JSON texts received ("type" of each) or binary messages (kind).
    texts: Vec<String>,
    kinds: Vec<Kind>,
    /// Pong t0 values received.
    pongs: Vec<u64>,
    /// WebSocket pings to answer.
    ws_pings: Vec<Vec<u8>>,
    /// A close frame was received.
    got_close: bool,
    mask: u32,
}

impl Peer {
    fn new(conn: ConnId, json: bool) -> Peer {
        Peer {
            conn,
            json,
            inbox: Vec::new(),
            closed: false,
            texts: Vec::new(),
            kinds: Vec::new(),
            pongs: Vec::new(),
            ws_pings: Vec::new(),
            got_close: false,
            mask: 0x9e37_79b9 ^ conn.index() as u32,
        }
    }

    fn frame(&mut self, kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        let mask = self.mask.to_le_bytes();
        let mut v = vec![0u8; 14 + payload.len()];
        let n = ws::write_client_header(&mut v, kind, true, payload.len(), mask)
            .expect("room for the header");
        v[n..n + payload.len()].copy_from_slice(payload);
        ws::mask_payload(&mut v[n..n + payload.len()], mask);
        v.truncate(n + payload.len());
        v
    }
}

/// A core, its two peers and the clock.
struct Sim {
    core: Core,
    now: u64,
    bin: Peer,
    json: Peer,
    member: u16,
    seq: u32,
    decoder: PoseDecoder,
    scratch: Vec<u8>,
}

/// What one input did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Texts sent.
    pub texts: usize,
    /// JSON texts the JSON client got.
    pub answers: usize,
    /// Errors among them.
    pub errors: usize,
    /// Messages the binary member got from the JSON client (poses, audio,
    /// member_joined…), beyond its own pongs.
    pub relayed: usize,
    /// The JSON client's connection was closed by the hub.
    pub closed: bool,
}

/// Runs one input on a fresh core; panics if a property above does not hold.
pub fn run(data: &[u8]) -> Outcome {
    JsonHarness::new().run(data)
}

/// A hub core and its binary member, kept across inputs by the fuzz target
/// (making a core costs more than most inputs): each run opens a new JSON
/// client, the binary member joins `r1` again first (an earlier client may
/// have kicked it or closed the room), and the clock moves on, the core's
/// timers running when due.
pub struct JsonHarness {
    sim: Sim,
}

impl Default for JsonHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonHarness {
    /// A core whose binary member said hello and joined `r1`.
    pub fn new() -> JsonHarness {
        JsonHarness { sim: Sim::new() }
    }

    /// Runs one input; panics if a property above does not hold.
    pub fn run(&mut self, data: &[u8]) -> Outcome {
        let mut out = Outcome::default();
        let Some((&mode, rest)) = data.split_first() else {
            return out;
        };
        let sim = &mut self.sim;
        sim.now += 10_000;
        if sim.core.poll_timeout().is_some_and(|t| sim.now >= t) {
            sim.core.handle_timeout(sim.now);
            sim.pump();
        }
        sim.send_bin(&Message::Join(Join {
            room: "r1",
            role: Role::Member,
        }));
        sim.bin.kinds.clear();
        let j = sim
            .core
            .handle_open(sim.now, peer_addr(2), true)
            .expect("a free slot");
        sim.json = Peer::new(j, true);
        let mut prefix: Vec<Vec<u8>> = Vec::new();
        if mode & 2 != 0 {
            prefix.push(br#"{"type":"hello","client":"fuzz"}"#.to_vec());
            if mode & 4 != 0 {
                prefix.push(br#"{"type":"join","room":"r1","role":"member"}"#.to_vec());
            }
        }
        let texts = rest.split(|&b| b == b'\n').map(|t| {
            if mode & 1 != 0 {
                t.to_vec()
            } else {
                String::from_utf8_lossy(t).into_owned().into_bytes()
            }
        });
        for text in prefix.into_iter().chain(texts).take(MAX_TEXTS) {
            if sim.json.closed {
                break;
            }
            out.texts += 1;
            let answers_before = sim.json.texts.len();
            let frame = sim.json.frame(FrameKind::Text, &text);
            sim.feed(true, &frame);
            sim.pump();
            let answers = &sim.json.texts[answers_before..];
            if must_refuse(&text) {
                assert!(
                    answers.iter().any(|t| t == "error") || sim.json.got_close,
                    "{:?} was not refused: got {answers:?}",
                    String::from_utf8_lossy(&text)
                );
            }
            sim.now += 1_000;
        }
        // The binary member's session works beside whatever the client did.
        sim.ping_check();
        out.relayed = sim.bin.kinds.iter().filter(|k| **k != Kind::Pong).count();
        out.answers = sim.json.texts.len();
        out.errors = sim.json.texts.iter().filter(|t| *t == "error").count();
        out.closed = sim.json.closed;
        if !sim.json.closed {
            sim.json.closed = true;
            sim.core.handle_closed(sim.now, j, Closed::Peer);
            sim.pump();
        }
        sim.ping_check();
        out
    }
}

/// Whether the hub must refuse a text: it is not a JSON object whose
/// `"type"` is a string naming a message JSON mode takes. (However long the
/// strings its refusal quotes: the hub cuts an error's sentence to fit, a
/// bug this target found — docs/FUZZING.md, "Findings".)
fn must_refuse(text: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(text) else {
        return true;
    };
    let Some(o) = v.as_object() else {
        return true;
    };
    let known = o
        .get("type")
        .and_then(serde_json::Value::as_str)
        .is_some_and(|t| TYPES.contains(&t));
    !known
}

fn peer_addr(k: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, k], 40_000 + u16::from(k)))
}

impl Sim {
    /// The core with the binary member in room `r1`.
    fn new() -> Sim {
        let mut core = Core::new(&config(), None, T0, UNIX).expect("a valid configuration");
        let b = core
            .handle_open(T0, peer_addr(1), false)
            .expect("a free slot");
        let mut sim = Sim {
            core,
            now: T0,
            bin: Peer::new(b, false),
            json: Peer::new(b, true),
            member: 0,
            seq: 0,
            decoder: PoseDecoder::new(),
            scratch: vec![0u8; MAX_PLAIN_PAYLOAD],
        };
        sim.json.closed = true; // none yet
        let hello = Message::Hello(Hello {
            minor: 0,
            token: "",
            resume: 0,
            client: "fuzz-binary",
            stream: 0,
        });
        sim.send_bin(&hello);
        assert!(sim.bin.kinds.contains(&Kind::Welcome), "no welcome");
        sim.send_bin(&Message::Join(Join {
            room: "r1",
            role: Role::Member,
        }));
        assert!(sim.bin.kinds.contains(&Kind::RoomSnapshot), "no snapshot");
        sim
    }

    /// A control message from the binary member, delivered.
    fn send_bin(&mut self, msg: &Message<'_>) {
        self.seq += 1;
        let h = Header::new(msg.kind(), 0, self.member, self.seq, self.now);
        let mut buf = [0u8; 512];
        let n = encode_control(&h, msg, &mut buf).expect("encodes");
        let frame = self.bin.frame(FrameKind::Binary, &buf[..n]);
        self.feed(false, &frame);
        self.pump();
    }

    /// The binary member pings; its pong must come back.
    fn ping_check(&mut self) {
        let t0 = self.now + u64::from(self.seq);
        self.send_bin(&Message::Ping(Ping { t0_us: t0 }));
        assert!(
            self.bin.pongs.contains(&t0),
            "the binary member's ping {t0} was not answered"
        );
        self.bin.pongs.clear();
    }

    /// Bytes from a peer reach the core, in as many reads as they take.
    fn feed(&mut self, json: bool, mut bytes: &[u8]) {
        let conn = if json { self.json.conn } else { self.bin.conn };
        for _ in 0..1_000 {
            let closed = if json {
                self.json.closed
            } else {
                self.bin.closed
            };
            if bytes.is_empty() || closed {
                return;
            }
            let buf = self.core.recv_buffer(conn);
            let n = buf.len().min(bytes.len());
            assert!(n > 0, "the core lends no receive buffer");
            buf[..n].copy_from_slice(&bytes[..n]);
            let mut more = self.core.handle_received(self.now, conn, n);
            // A receiver's queue filled: its output goes first, then the rest.
            for _ in 0..10_000 {
                if !more {
                    break;
                }
                self.pump();
                more = self.core.handle_received(self.now, conn, 0);
            }
            assert!(!more, "the core held bytes back 10 000 times");
            bytes = &bytes[n..];
        }
        panic!("more than 1000 reads");
    }

    /// Acts on the core's events and delivers its output until nothing moves.
    fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            while let Some(ev) = self.core.poll_event() {
                match ev {
                    Event::Shutdown(c) | Event::Close(c) => {
                        let p = if c == self.bin.conn && !self.bin.closed {
                            &mut self.bin
                        } else {
                            &mut self.json
                        };
                        assert!(
                            p.conn == c && !p.closed,
                            "an event for no open peer: {ev:?}"
                        );
                        assert!(p.json, "the binary member was closed: {ev:?}");
                        p.closed = true;
                        if matches!(ev, Event::Shutdown(_)) {
                            // The peer reads the close and hangs up.
                            self.deliver(true);
                            self.core.handle_closed(self.now, c, Closed::Peer);
                        }
                    }
                    _ => {}
                }
            }
            while self.core.poll_output().is_some() {}
            let moved = self.deliver(false) | self.deliver(true);
            if !moved {
                return;
            }
        }
        panic!("output still moving after {MAX_ROUNDS} rounds");
    }

    /// Writes a peer everything the core has for it, and parses it.
    fn deliver(&mut self, json: bool) -> bool {
        let peer = if json { &mut self.json } else { &mut self.bin };
        if peer.closed && !json {
            return false;
        }
        let mut took = 0;
        {
            let mut slices = [IoSlice::new(&[]); 16];
            let k = self.core.poll_transmit(peer.conn, &mut slices);
            for s in &slices[..k] {
                peer.inbox.extend_from_slice(s);
                took += s.len();
            }
        }
        if took == 0 {
            return false;
        }
        self.core.handle_written(self.now, peer.conn, took);
        let peer = if json { &mut self.json } else { &mut self.bin };
        loop {
            let parsed = ws::parse_server_frame(&mut peer.inbox, 1 << 20)
                .unwrap_or_else(|e| panic!("the hub sent an invalid frame: {e}"));
            let f = match parsed {
                Parsed::Need(_) => break,
                Parsed::Frame(f) => f,
            };
            assert!(f.fin, "the hub never fragments");
            let payload = peer.inbox[f.header_len..f.len()].to_vec();
            peer.inbox.drain(..f.len());
            match f.kind {
                FrameKind::Text => {
                    assert!(peer.json, "a text frame to the binary member");
                    let v: serde_json::Value = serde_json::from_slice(&payload)
                        .unwrap_or_else(|e| panic!("the hub sent invalid JSON ({e})"));
                    let ty = v
                        .get("type")
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or_else(|| panic!("the hub sent JSON without a type: {v}"));
                    if ty == "error" {
                        let reason = v.get("reason").and_then(serde_json::Value::as_str);
                        assert!(
                            reason.is_some_and(|r| !r.is_empty()),
                            "an error without a sentence: {v}"
                        );
                    }
                    peer.texts.push(ty.to_string());
                }
                FrameKind::Binary => {
                    assert!(!peer.json, "a binary frame to the JSON client");
                    let packet = Packet::new_checked(&payload[..])
                        .unwrap_or_else(|e| panic!("the hub sent an invalid message: {e}"));
                    let header = packet.header();
                    let msg = Message::parse(&packet, &mut self.scratch)
                        .unwrap_or_else(|e| panic!("the hub sent an unparsable message: {e}"));
                    match msg {
                        Message::Pong(p) => peer.pongs.push(p.t0_us),
                        Message::Welcome(w) => self.member = w.member,
                        // Only the JSON client publishes, and its poses are
                        // keyframes.
                        Message::Pose(pose) => {
                            let r = self.decoder.decode(&header, &pose);
                            assert!(r.is_ok(), "a relayed JSON pose does not decode: {r:?}");
                        }
                        _ => {}
                    }
                    peer.kinds.push(header.kind);
                }
                FrameKind::Ping => peer.ws_pings.push(payload),
                FrameKind::Pong => {}
                FrameKind::Close => {
                    ws::parse_close(&payload)
                        .unwrap_or_else(|e| panic!("an invalid close payload: {e}"));
                    assert!(peer.json, "the binary member got a close");
                    peer.got_close = true;
                }
                FrameKind::Continuation => panic!("a continuation from the hub"),
            }
        }
        // Answer WebSocket pings as a library would.
        let pings = core::mem::take(&mut peer.ws_pings);
        for p in pings {
            let peer = if json { &mut self.json } else { &mut self.bin };
            let f = peer.frame(FrameKind::Pong, &p);
            self.feed(json, &f);
        }
        true
    }
}
