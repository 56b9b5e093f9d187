//! Bad input over real sockets on 127.0.0.1: garbage instead of HTTP, oversized
//! heads, silence, WebSocket framing violations, oversize frames, broken protocol
//! messages, floods, vanishing peers, silent sessions and a shutdown. Each case
//! checks the refusal the client sees (HTTP status, ERROR message, close code,
//! closed socket) and then that an honest pair of clients on the same hub still
//! joins a room and relays a pose byte for byte ([`assert_hub_still_serves`]).
//!
//! Misbehaving clients are raw `TcpStream`s with a hand-written frame builder
//! ([`frame`], [`frame_header`]) and upgrade request ([`upgrade_request`]); honest
//! ones are the blocking tungstenite client of `tests/common`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use poselink::hub::HubConfig;
use poselink::proto::{
    Header, Hello, Join, Kind, LeaveReason, Message, Packet, Ping, Role, Welcome, encode_control,
    seal,
};
use tungstenite::Message as WsMessage;

/// The longest any single wait may take.
const T: Duration = Duration::from_secs(5);

// ---- frames, requests and messages, built by hand ------------------------------

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BIN: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Error codes of the protocol (docs/PROTOCOL.md §6.3).
const BAD_MESSAGE: u16 = 1;
const UNSUPPORTED_VERSION: u16 = 2;
const UNAUTHENTICATED: u16 = 3;
const RATE_LIMITED: u16 = 12;
const OVERSIZE: u16 = 13;
const GOING_AWAY: u16 = 15;

/// A WebSocket frame header: `b0` is FIN | RSV | opcode as sent; the length in
/// the shortest form; the mask key if given.
fn frame_header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut v = vec![b0];
    if len < 126 {
        v.push(m | len as u8);
    } else if len <= 0xffff {
        v.push(m | 126);
        v.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        v.push(m | 127);
        v.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(k) = mask {
        v.extend_from_slice(&k);
    }
    v
}

/// A whole frame, masked with `mask` if given.
fn frame_with(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut v = frame_header(b0, payload.len() as u64, mask);
    match mask {
        Some(k) => v.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4])),
        None => v.extend_from_slice(payload),
    }
    v
}

/// A whole masked (client) frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(b0, payload, Some(MASK))
}

/// RFC 6455 §1.3's example key and the accept value it must produce.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn upgrade_request() -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A protocol message (hub-style header), encoded by the crate's own encoder.
fn encode(msg: &Message<'_>, room: u16, sender: u16, seq: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 70_000];
    let h = Header::new(msg.kind(), room, sender, seq, 0);
    let n = encode_control(&h, msg, &mut buf).expect("encode");
    buf.truncate(n);
    buf
}

/// Recomputes the CRC of a message whose bytes were changed.
fn reseal(mut m: Vec<u8>) -> Vec<u8> {
    let n = m.len() - 4;
    seal(&mut m, n).unwrap();
    m
}

fn ping_msg(t0: u64, sender: u16) -> Vec<u8> {
    encode(&Message::Ping(Ping { t0_us: t0 }), 0, sender, 1)
}

/// A ping whose payload carries trailing bytes (ignored by decoders, §4.2 rule 3),
/// `total` bytes long in all.
fn padded_ping(t0: u64, sender: u16, total: usize) -> Vec<u8> {
    let mut m = ping_msg(t0, sender);
    m.truncate(m.len() - 4);
    m.resize(total, 0x5a);
    let m = reseal(m);
    assert_eq!(m.len(), total);
    let mut scratch = vec![0u8; 70_000];
    let p = Packet::new_checked(&m[..]).expect("a valid padded ping");
    assert!(
        matches!(Message::parse(&p, &mut scratch), Ok(Message::Ping(Ping { t0_us })) if t0_us == t0)
    );
    m
}

fn hello_msg(client: &str) -> Vec<u8> {
    let hello = Message::Hello(Hello {
        minor: 0,
        token: "",
        resume: 0,
        client,
        stream: 0,
    });
    encode(&hello, 0, 0, 1)
}

/// (code, about, reason) of an ERROR message.
fn error_of(g: &Got) -> Option<(u16, u8, String)> {
    g.with(|m| match m {
        Message::Error(e) => Some((e.code.0, e.about, e.reason.to_string())),
        _ => None,
    })
}

fn pong_t0(g: &Got) -> Option<u64> {
    g.with(|m| match m {
        Message::Pong(p) => Some(p.t0_us),
        _ => None,
    })
}

fn member_left(g: &Got) -> Option<(u16, LeaveReason)> {
    g.with(|m| match m {
        Message::MemberLeft(l) => Some((l.member, l.reason)),
        _ => None,
    })
}

mod framing;
mod http;
mod raw;
mod session;

use raw::*;

// ---- what every case ends with ---------------------------------------------------

static ROOM_COUNTER: AtomicU64 = AtomicU64::new(1);

/// Two honest clients connect, join a fresh room, and a pose from one reaches the
/// other byte for byte.
fn assert_hub_still_serves(hub: &TestHub) {
    let n = ROOM_COUNTER.fetch_add(1, Ordering::Relaxed);
    let room = format!("still-serves-{n}");
    let mut a = Client::session(hub.addr, "");
    let mut b = Client::session(hub.addr, "");
    let h = a
        .join(&room, Role::Owner)
        .expect("an honest client joins a room");
    let hb = b
        .join(&room, Role::Member)
        .expect("a second honest client joins the room");
    assert_eq!(h, hb);
    let joined = a
        .recv_until(T, |g| g.kind() == Kind::MemberJoined)
        .expect("member joined");
    joined.with(|m| match m {
        Message::MemberJoined(j) => assert_eq!(j.member.member, b.member),
        other => panic!("{other:?}"),
    });
    let mut s = PoseStream::new(n);
    let sent = s.next(h, b.member).to_vec();
    b.send_bytes(&sent);
    let got = a
        .recv_until(T, |g| g.kind() == Kind::Pose)
        .expect("the pose is relayed");
    assert_eq!(got.bytes, sent, "relayed byte for byte");
    assert!(
        a.closed.is_none() && b.closed.is_none(),
        "{:?} {:?}",
        a.closed,
        b.closed
    );
}

/// Polls a gauge until it shows `want` (connections close asynchronously), for
/// at most `within`; returns the last value seen.
fn poll_metric(hub: &TestHub, name: &str, want: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    let mut last = hub.metric(name);
    while last != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        last = hub.metric(name);
    }
    last
}

fn wait_metric(hub: &TestHub, name: &str, want: f64) {
    assert_eq!(poll_metric(hub, name, want, T), want, "{name}");
}

/// A session client's protocol ping is answered: the session is open.
fn assert_answers_ping(c: &mut Client, t0: u64) {
    c.send(0, &Message::Ping(Ping { t0_us: t0 }));
    let pong = c.recv_until(T, |g| g.kind() == Kind::Pong && pong_t0(g) == Some(t0));
    assert!(
        pong.is_some(),
        "the session answers a ping (closed: {:?})",
        c.closed
    );
}
