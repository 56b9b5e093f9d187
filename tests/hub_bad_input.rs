#![cfg(feature = "std")]
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

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
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

// ---- a raw, misbehaving client ---------------------------------------------------

/// What a raw client read from the hub.
#[derive(Debug)]
enum Ev {
    Msg(Got),
    Ping,
    Pong(Vec<u8>),
    Close(u16, String),
    Other(u8),
    /// The TCP connection ended: "eof" or "reset".
    End(&'static str),
}

/// Everything a raw client read until the hub ended the connection.
#[derive(Debug, Default)]
struct Outcome {
    /// Protocol messages before the close frame.
    msgs: Vec<Got>,
    /// Protocol messages after the close frame (there must be none).
    after_close: usize,
    pongs: Vec<Vec<u8>>,
    close: Option<(u16, String)>,
    close_after: Option<Duration>,
    ended: Option<&'static str>,
    ended_after: Option<Duration>,
}

impl Outcome {
    fn errors(&self) -> Vec<(u16, u8, String)> {
        self.msgs.iter().filter_map(error_of).collect()
    }

    fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| c.0)
    }
}

struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
    end: Option<&'static str>,
    tmp: Vec<u8>,
}

impl Raw {
    /// A TCP connection, nothing sent.
    fn tcp(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        Raw {
            s,
            buf: Vec::new(),
            end: None,
            tmp: vec![0u8; 1 << 16],
        }
    }

    /// A TCP connection upgraded to WebSocket by hand (no hello yet).
    fn upgraded(addr: SocketAddr) -> Raw {
        let mut r = Raw::tcp(addr);
        assert!(r.write(&upgrade_request()));
        r.read_upgrade_response();
        r
    }

    /// Reads the `101` answer; keeps what follows it.
    fn read_upgrade_response(&mut self) {
        let deadline = Instant::now() + T;
        let end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(Instant::now() < deadline, "no upgrade response");
            assert!(
                self.end.is_none(),
                "closed during the upgrade: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains(WS_ACCEPT), "{head}");
        self.buf.drain(..end);
    }

    /// Sends bytes; false if the hub has closed (a write error).
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok()
    }

    /// Sends a protocol message as one masked binary frame.
    fn send_msg(&mut self, m: &[u8]) -> bool {
        self.write(&frame(FIN | OP_BIN, m))
    }

    /// One read (up to the 20 ms read timeout).
    fn fill(&mut self) {
        if self.end.is_some() {
            std::thread::sleep(Duration::from_millis(5));
            return;
        }
        match self.s.read(&mut self.tmp) {
            Ok(0) => self.end = Some("eof"),
            Ok(n) => self.buf.extend_from_slice(&self.tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => self.end = Some("reset"),
        }
    }

    /// One server frame from the buffer, if whole.
    fn parse(&mut self) -> Option<Ev> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(
            b[0] & 0x70,
            0,
            "a server frame with RSV bits: {:02x?}",
            &b[..2]
        );
        assert_eq!(b[1] & 0x80, 0, "a masked server frame: {:02x?}", &b[..2]);
        assert!(b[0] & 0x80 != 0, "the hub never fragments");
        let (len, hl) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        if b.len() < hl + len {
            return None;
        }
        let op = b[0] & 0x0f;
        let payload = b[hl..hl + len].to_vec();
        self.buf.drain(..hl + len);
        Some(match op {
            OP_BIN => Ev::Msg(Got { bytes: payload }),
            OP_PING => Ev::Ping,
            OP_PONG => Ev::Pong(payload),
            OP_CLOSE => {
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                let why = String::from_utf8_lossy(payload.get(2..).unwrap_or(&[])).to_string();
                Ev::Close(code, why)
            }
            op => Ev::Other(op),
        })
    }

    /// The next event within `timeout` (None: nothing came).
    fn next(&mut self, timeout: Duration) -> Option<Ev> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.parse() {
                return Some(ev);
            }
            if let Some(end) = self.end {
                return Some(Ev::End(end));
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.fill();
        }
    }

    /// The next protocol message for which `pred` holds (others skipped).
    fn recv_msg(&mut self, timeout: Duration, mut pred: impl FnMut(&Got) -> bool) -> Option<Got> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left)? {
                Ev::Msg(g) if pred(&g) => return Some(g),
                Ev::End(_) | Ev::Close(..) => return None,
                _ => {}
            }
        }
    }

    /// Hello; the member id from the welcome.
    fn hello(&mut self) -> u16 {
        assert!(self.send_msg(&hello_msg("raw")));
        let w = self
            .recv_msg(T, |g| matches!(g.kind(), Kind::Welcome | Kind::Error))
            .expect("an answer to the hello");
        w.with(|m| match m {
            Message::Welcome(w) => w.member,
            other => panic!("hello refused: {other:?}"),
        })
    }

    /// Joins `room` as a member; the room handle from the snapshot.
    fn join(&mut self, room: &str, member: u16) -> u16 {
        let m = encode(
            &Message::Join(Join {
                room,
                role: Role::Member,
            }),
            0,
            member,
            2,
        );
        assert!(self.send_msg(&m));
        let s = self
            .recv_msg(T, |g| matches!(g.kind(), Kind::RoomSnapshot | Kind::Error))
            .expect("an answer to the join");
        assert_eq!(s.kind(), Kind::RoomSnapshot, "{:?}", error_of(&s));
        s.header().room
    }

    /// Reads until the hub ends the TCP connection (or `timeout`).
    fn drain(&mut self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut o = Outcome::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left) {
                None => return o,
                Some(Ev::Msg(g)) if o.close.is_none() => o.msgs.push(g),
                Some(Ev::Msg(_)) => o.after_close += 1,
                Some(Ev::Pong(p)) => o.pongs.push(p),
                Some(Ev::Close(code, why)) => {
                    assert!(o.close.is_none(), "two close frames");
                    o.close = Some((code, why));
                    o.close_after = Some(start.elapsed());
                }
                Some(Ev::End(e)) => {
                    o.ended = Some(e);
                    o.ended_after = Some(start.elapsed());
                    return o;
                }
                Some(Ev::Ping) => {}
                Some(Ev::Other(op)) => panic!("the hub sent a frame with opcode {op:#x}"),
            }
        }
    }
}

/// Reads the hub's refusal: an ERROR with `error` (if given) before a close frame
/// with `close`, nothing after it, and the TCP connection ended.
fn expect_refused(raw: &mut Raw, what: &str, error: Option<u16>, close: u16) -> Outcome {
    let o = raw.drain(T);
    assert_eq!(o.close_code(), Some(close), "{what}: close code; {o:?}");
    if let Some(code) = error {
        let errors = o.errors();
        assert!(
            errors.iter().any(|e| e.0 == code),
            "{what}: an ERROR {code} before the close; got {errors:?}"
        );
        assert!(
            errors.iter().all(|e| !e.2.is_empty()),
            "{what}: the error says why: {errors:?}"
        );
    }
    assert_eq!(o.after_close, 0, "{what}: nothing after the close frame");
    assert!(
        o.ended.is_some(),
        "{what}: the hub ends the connection; {o:?}"
    );
    o
}

// ---- HTTP by hand ----------------------------------------------------------------

struct HttpAnswer {
    status: Option<u16>,
    head: String,
    body: String,
    /// The hub ended the connection (EOF or reset) within the wait.
    closed: bool,
    elapsed: Duration,
}

/// Sends `bytes` on a new connection and reads until the hub closes it.
fn http_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> HttpAnswer {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let mut tmp = [0u8; 4096];
    let mut closed = false;
    while start.elapsed() < wait {
        match s.read(&mut tmp) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map_or((text.clone(), String::new()), |(h, b)| {
            (h.to_string(), b.to_string())
        });
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    HttpAnswer {
        status,
        head,
        body,
        closed,
        elapsed: start.elapsed(),
    }
}

fn xorshift_bytes(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A TLS 1.2/1.3 ClientHello as a browser pointed at `https://` or `wss://` would
/// send: a handshake record, no CR LF anywhere.
fn tls_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend(xorshift_bytes(7, 32)); // random
    body.push(32);
    body.extend(xorshift_bytes(8, 32)); // session id
    body.extend_from_slice(&[0x00, 0x06, 0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]); // cipher suites
    body.extend_from_slice(&[0x01, 0x00]); // compression: null
    let sni = b"hub.example";
    let mut ext = vec![0x00, 0x00];
    ext.extend_from_slice(&((sni.len() + 5) as u16).to_be_bytes());
    ext.extend_from_slice(&((sni.len() + 3) as u16).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    ext.extend_from_slice(sni);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend(ext);
    let mut hs = vec![0x01, 0x00];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend(body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend(hs);
    assert!(!rec.windows(2).any(|w| w == b"\r\n"));
    rec
}

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

// ---- HTTP ------------------------------------------------------------------------

#[test]
fn garbage_instead_of_http_gets_400_and_the_hub_serves_on() {
    let hub = TestHub::dev();
    let http_before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let mut tls_like = tls_client_hello();
    tls_like.extend_from_slice(b"\r\n\r\n");
    let mut random: Vec<u8> = xorshift_bytes(0x2545_f491, 600)
        .into_iter()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    random.extend_from_slice(b"\r\n\r\n");
    let no_key = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n".to_vec();
    let cases: [(&str, Vec<u8>); 5] = [
        ("TLS ClientHello bytes", tls_like),
        ("random bytes", random),
        (
            "a POST",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(),
        ),
        ("an upgrade without a key", no_key),
        (
            "a NUL-laden request line",
            b"GET /\0\0\0 HTTP/1.1\r\n\r\n".to_vec(),
        ),
    ];
    for (what, bytes) in &cases {
        let a = http_exchange(hub.addr, bytes, T);
        assert_eq!(a.status, Some(400), "{what}: {}", a.head);
        assert!(
            a.body.contains("poselink hub"),
            "{what}: the body says what this is: {:?}",
            a.body
        );
        assert!(
            a.body.contains("WebSocket"),
            "{what}: and what to do: {:?}",
            a.body
        );
        assert!(
            a.head.to_ascii_lowercase().contains("connection: close"),
            "{what}: {}",
            a.head
        );
        assert!(a.closed, "{what}: the hub closes the connection");
        assert_hub_still_serves(&hub);
    }

    // The front page (the browser front end), then a path that is nothing.
    let (status, body) = hub.http_get("/");
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") && body.contains("/index.js"),
        "{body}"
    );
    let (status, body) = hub.http_get("/no/such/page?x=1");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("poselink hub"), "{body}");
    let (status, body) = hub.http_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = hub.http_get("/metrics");
    assert_eq!(status, 200);
    assert!(
        body.lines().any(|l| l.starts_with("poselink_connections ")),
        "{body}"
    );
    let http_after = hub.metric("poselink_errors_total{kind=\"http\"}");
    assert!(
        http_after >= http_before + cases.len() as f64,
        "every bad request is counted: {http_before} -> {http_after}"
    );
    assert_hub_still_serves(&hub);
}

/// A bad request is one HTTP error, counted once.
#[test]
fn a_bad_request_is_counted_once() {
    let hub = TestHub::dev();
    let before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let a = http_exchange(hub.addr, b"HELLO?\r\n\r\n", T);
    assert_eq!(a.status, Some(400));
    let after = hub.metric("poselink_errors_total{kind=\"http\"}");
    assert_eq!(after - before, 1.0, "one bad request, one count");
}

/// A TLS client (someone pointing `wss://` or `https://` at the hub's plain port)
/// never sends a blank line: its ClientHello must be refused when it arrives, not
/// held until the handshake timeout.
#[test]
fn tls_client_hello_is_refused_at_once() {
    let hub = TestHub::start(HubConfig {
        handshake_timeout_ms: 3_000,
        ..HubConfig::local_dev()
    });
    let a = http_exchange(hub.addr, &tls_client_hello(), Duration::from_millis(1_500));
    assert_eq!(
        a.status,
        Some(400),
        "an HTTP 400 within 1.5 s, got {:?} after {:?}",
        a.head,
        a.elapsed
    );
    assert!(a.body.contains("poselink hub"), "{:?}", a.body);
    assert!(a.closed);
    assert_hub_still_serves(&hub);
}

#[test]
fn an_oversized_request_head_gets_431() {
    let hub = TestHub::dev();
    let before = hub.metric("poselink_errors_total{kind=\"http\"}");
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    while head.len() < 9 * 1024 {
        head.extend_from_slice(
            b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        );
    }
    let a = http_exchange(hub.addr, &head, T);
    assert_eq!(a.status, Some(431), "{}", a.head);
    assert!(a.body.contains("8 KiB"), "{:?}", a.body);
    assert!(a.closed, "the hub closes the connection");
    assert!(hub.metric("poselink_errors_total{kind=\"http\"}") > before);
    assert_hub_still_serves(&hub);

    // The same, dripped in 1 KiB pieces.
    let mut s = TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    for chunk in head.chunks(1024) {
        if s.write_all(chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = Vec::new();
    let start = Instant::now();
    let mut tmp = [0u8; 1024];
    while start.elapsed() < T {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) if !got.is_empty() => break,
            Ok(n) => got.extend_from_slice(&tmp[..n]),
            Err(_) => {}
        }
    }
    assert!(
        got.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert_hub_still_serves(&hub);
}

// ---- silence ---------------------------------------------------------------------

#[test]
fn silent_connections_time_out() {
    let hub = TestHub::start(HubConfig {
        handshake_timeout_ms: 300,
        ..HubConfig::local_dev()
    });
    let timeouts = || hub.metric("poselink_errors_total{kind=\"handshake_timeout\"}");
    let unauth = || hub.metric("poselink_errors_total{kind=\"unauthenticated\"}");
    let before = timeouts();

    // Connected, nothing sent.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    let o = r.drain(T);
    let took = start.elapsed();
    assert!(o.ended.is_some(), "a silent connection is closed: {o:?}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1_500),
        "closed after {took:?}"
    );
    assert_eq!(timeouts(), before + 1.0);
    assert_hub_still_serves(&hub);

    // Half a request head, then silence.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    let o = r.drain(T);
    assert!(o.ended.is_some(), "a half request is closed: {o:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1_500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(timeouts(), before + 2.0);
    assert_hub_still_serves(&hub);

    // A request dripped one byte every 50 ms (slowloris): the deadline holds.
    let start = Instant::now();
    let mut r = Raw::tcp(hub.addr);
    let drip =
        b"GET / HTTP/1.1\r\nHost: slowloris.example\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n";
    let mut closed_after = None;
    for &b in drip.iter() {
        if !r.write(&[b]) {
            closed_after = Some(start.elapsed());
            break;
        }
        r.fill();
        if r.end.is_some() {
            closed_after = Some(start.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let closed_after = closed_after.expect("a dripping client is closed at the deadline");
    assert!(
        closed_after < Duration::from_millis(1_500),
        "closed after {closed_after:?}"
    );
    assert_eq!(timeouts(), before + 3.0);
    assert_hub_still_serves(&hub);

    // Upgraded, but no hello: UNAUTHENTICATED and 4003 after the timeout.
    let unauth_before = unauth();
    let mut r = Raw::upgraded(hub.addr);
    let start = Instant::now();
    let o = expect_refused(&mut r, "no hello", Some(UNAUTHENTICATED), 4003);
    let at = o.close_after.unwrap();
    assert!(
        at >= Duration::from_millis(250) && at < Duration::from_millis(1_500),
        "closed after {at:?}"
    );
    assert!(start.elapsed() < T);
    assert_eq!(o.errors()[0].1, 0, "about 0: no message caused it");
    assert!(o.errors()[0].2.contains("hello"), "{:?}", o.errors());
    assert_eq!(timeouts(), before + 4.0);
    assert_eq!(unauth(), unauth_before + 1.0);
    assert_hub_still_serves(&hub);

    // The same through tungstenite.
    let mut c = Client::connect(hub.addr);
    let e = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error before the close");
    assert_eq!(e.error().unwrap().0, UNAUTHENTICATED);
    assert_eq!(c.expect_close(T).0, 4003);
    assert_hub_still_serves(&hub);
    wait_metric(&hub, "poselink_connections", 1.0); // the metrics request itself
}

// ---- WebSocket framing -----------------------------------------------------------

#[test]
fn websocket_protocol_violations_close_with_1002() {
    let hub = TestHub::dev();
    let ws_before = hub.metric("poselink_errors_total{kind=\"websocket\"}");
    let ping = ping_msg(1, 0);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "an unmasked frame",
            frame_with(FIN | OP_BIN, &ping, None),
            true,
        ),
        (
            "an unmasked ping",
            frame_with(FIN | OP_PING, b"x", None),
            true,
        ),
        ("reserved data opcode 0x3", frame(FIN | 0x3, &ping), true),
        ("reserved data opcode 0x7", frame(FIN | 0x7, &ping), true),
        ("reserved control opcode 0xb", frame(FIN | 0xb, b""), true),
        ("reserved control opcode 0xf", frame(FIN | 0xf, b"x"), true),
        (
            "RSV1 (no extension negotiated)",
            frame(FIN | RSV1 | OP_BIN, &ping),
            true,
        ),
        ("RSV2", frame(FIN | RSV2 | OP_BIN, &ping), true),
        ("RSV3 on a ping", frame(FIN | RSV3 | OP_PING, b""), true),
        ("a 126-byte ping", frame(FIN | OP_PING, &[1u8; 126]), true),
        ("a 200-byte close", frame(FIN | OP_CLOSE, &[3u8; 200]), true),
        ("a fragmented ping", frame(OP_PING, b"abc"), true),
        ("a fragmented close", frame(OP_CLOSE, &[3, 232]), true),
        (
            "a continuation with nothing to continue",
            frame(FIN | OP_CONT, &ping),
            true,
        ),
        (
            "a new message inside a fragmented one",
            [frame(OP_BIN, &ping[..5]), frame(FIN | OP_TEXT, b"{}")].concat(),
            true,
        ),
        (
            "a close with a 1-byte payload",
            frame(FIN | OP_CLOSE, &[3]),
            false,
        ),
        (
            "a close with a reason that is not UTF-8",
            frame(FIN | OP_CLOSE, &[3, 232, 0xff, 0xfe]),
            false,
        ),
    ];
    for (k, (what, bytes, error)) in cases.iter().enumerate() {
        let mut r = Raw::upgraded(hub.addr);
        // Half before the hello, half in a session.
        let session = k % 2 == 1;
        if session {
            r.hello();
        }
        let start = Instant::now();
        assert!(r.write(bytes), "{what}");
        let o = expect_refused(&mut r, what, error.then_some(BAD_MESSAGE), 1002);
        assert!(
            o.close_after.unwrap() < Duration::from_secs(1),
            "{what}: promptly ({:?})",
            start.elapsed()
        );
        assert_hub_still_serves(&hub);
    }
    let ws_after = hub.metric("poselink_errors_total{kind=\"websocket\"}");
    let with_error = cases.iter().filter(|c| c.2).count() as f64;
    assert!(
        ws_after >= ws_before + with_error,
        "{ws_before} -> {ws_after}"
    );

    // A well-formed close is answered with the same code, and the hub lets go.
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    assert!(r.write(&frame(FIN | OP_CLOSE, &payload)));
    let o = expect_refused(&mut r, "a normal close", None, 1000);
    assert!(o.errors().is_empty(), "{o:?}");
    assert_hub_still_serves(&hub);
    wait_metric(&hub, "poselink_connections", 1.0);
}

/// RFC 6455 §7.4: 1005, 1006 and 1015 must never be sent in a close frame, and
/// codes below 1000 are not used; a close frame carrying one is a protocol error,
/// answered with 1002 (not echoed).
#[test]
fn close_frames_with_invalid_codes_get_1002() {
    let hub = TestHub::dev();
    for code in [0u16, 999, 1004, 1006, 1015] {
        let mut r = Raw::upgraded(hub.addr);
        r.hello();
        assert!(r.write(&frame(FIN | OP_CLOSE, &code.to_be_bytes())));
        expect_refused(&mut r, &format!("close code {code}"), None, 1002);
        assert_hub_still_serves(&hub);
    }
}

// ---- oversize --------------------------------------------------------------------

#[test]
fn oversize_frames_close_with_1009_before_the_payload() {
    let hub = TestHub::dev(); // max_message: 65 536
    let oversize_before = hub.metric("poselink_errors_total{kind=\"oversize\"}");
    for (what, len, session) in [
        ("a 1 MiB frame", 1u64 << 20, true),
        ("a 65 537-byte frame", 65_537, false),
        ("a 2^62-byte frame", 1 << 62, true),
    ] {
        let mut r = Raw::upgraded(hub.addr);
        if session {
            r.hello();
        }
        // The header only: the hub must refuse it before any payload arrives.
        let start = Instant::now();
        assert!(r.write(&frame_header(FIN | OP_BIN, len, Some(MASK))));
        let o = expect_refused(&mut r, what, Some(OVERSIZE), 1009);
        let at = o.close_after.unwrap();
        assert!(
            at < Duration::from_secs(1),
            "{what}: refused after {at:?} ({:?} in all)",
            start.elapsed()
        );
        assert_hub_still_serves(&hub);
    }

    // Fragments that together exceed max_message: two big ones...
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let piece = vec![0x11u8; 40_000];
    let _ = r.write(&[frame(OP_BIN, &piece), frame(FIN | OP_CONT, &piece)].concat());
    expect_refused(&mut r, "two 40 000-byte fragments", Some(OVERSIZE), 1009);
    assert_hub_still_serves(&hub);

    // ... or many small ones, with pings between them.
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    let piece = vec![0x22u8; 1_000];
    let mut bytes = frame(OP_BIN, &piece);
    for k in 0..80 {
        bytes.extend(frame(OP_CONT, &piece));
        if k % 10 == 0 {
            bytes.extend(frame(FIN | OP_PING, b"between"));
        }
    }
    bytes.extend(frame(FIN | OP_CONT, &piece));
    let _ = r.write(&bytes);
    let o = expect_refused(&mut r, "82 fragments of 1000 bytes", Some(OVERSIZE), 1009);
    assert!(
        !o.pongs.is_empty(),
        "the pings before the limit were answered"
    );
    assert_hub_still_serves(&hub);

    let oversize_after = hub.metric("poselink_errors_total{kind=\"oversize\"}");
    assert!(
        oversize_after >= oversize_before + 5.0,
        "{oversize_before} -> {oversize_after}"
    );
    wait_metric(&hub, "poselink_connections", 1.0);
}

/// A message of exactly max_message bytes is within the limit, however many
/// messages came before it in the same read.
#[test]
fn a_max_size_message_after_small_ones_is_accepted() {
    let hub = TestHub::dev();
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    let mut bytes = Vec::new();
    for t0 in 1..=40u64 {
        bytes.extend(frame(FIN | OP_BIN, &ping_msg(t0, member)));
    }
    let big = frame(FIN | OP_BIN, &padded_ping(41, member, 65_536));
    // The small messages and the start of the big one arrive together, the rest later.
    bytes.extend_from_slice(&big[..1_000]);
    assert!(r.write(&bytes));
    std::thread::sleep(Duration::from_millis(50));
    assert!(r.write(&big[1_000..]));
    let mut seen = Vec::new();
    while seen.len() < 41 {
        match r.next(T) {
            Some(Ev::Msg(g)) => {
                assert_eq!(error_of(&g), None, "after pongs {seen:?}");
                if let Some(t0) = pong_t0(&g) {
                    seen.push(t0);
                }
            }
            Some(Ev::Close(code, why)) => panic!("closed with {code} ({why}) after pongs {seen:?}"),
            Some(Ev::End(e)) => panic!("{e} after pongs {seen:?}"),
            Some(_) => {}
            None => panic!("no answer after pongs {seen:?}"),
        }
    }
    assert_eq!(seen, (1..=41).collect::<Vec<u64>>());
    assert_hub_still_serves(&hub);
}

// ---- fragmentation ---------------------------------------------------------------

/// A hello in 3 fragments with a ping between them: the pong comes first, then the
/// welcome; sent in one write, frame by frame, byte by byte, and pipelined with the
/// upgrade request.
#[test]
fn a_fragmented_hello_with_a_ping_between_is_assembled() {
    let hub = TestHub::dev();
    let hello = hello_msg("a client that fragments its hello");
    let (a, rest) = hello.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    let frames = [
        frame(OP_BIN, a),
        frame(FIN | OP_PING, b"are you there"),
        frame(OP_CONT, b),
        frame(OP_CONT, b""),
        frame(FIN | OP_CONT, c),
    ];
    for (k, how) in [
        "one write",
        "frame by frame",
        "byte by byte",
        "with the upgrade request",
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = if how == "with the upgrade request" {
            let mut r = Raw::tcp(hub.addr);
            assert!(r.write(&[upgrade_request(), frames.concat()].concat()));
            r.read_upgrade_response();
            r
        } else {
            Raw::upgraded(hub.addr)
        };
        match how {
            "frame by frame" => {
                for f in &frames {
                    assert!(r.write(f));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            "byte by byte" => {
                for byte in frames.concat() {
                    assert!(r.write(&[byte]));
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            "one write" => assert!(r.write(&frames.concat())),
            _ => {}
        }
        let mut pong_first = false;
        let welcome = loop {
            match r.next(T) {
                Some(Ev::Pong(p)) => {
                    assert_eq!(p, b"are you there", "{how}");
                    pong_first = true;
                }
                Some(Ev::Msg(g)) => break g,
                other => panic!("{how}: {other:?}"),
            }
        };
        assert!(
            pong_first,
            "{how}: the ping between the fragments is answered first"
        );
        let member = welcome.with(|m| match m {
            Message::Welcome(w) => w.member,
            other => panic!("{how}: {other:?}"),
        });
        assert_ne!(member, 0);
        // The session works: a join, and a big message in fragments with a ping.
        r.join(&format!("fragments-{k}"), member);
        let big = padded_ping(77, member, 30_000);
        let (x, rest) = big.split_at(10_000);
        let (y, z) = rest.split_at(10_000);
        let bytes = [
            frame(OP_BIN, x),
            frame(FIN | OP_PING, b"p2"),
            frame(OP_CONT, y),
            frame(FIN | OP_CONT, z),
        ]
        .concat();
        assert!(r.write(&bytes));
        let mut pong = false;
        let answer = loop {
            match r.next(T) {
                Some(Ev::Pong(p)) => pong = p == b"p2",
                Some(Ev::Msg(g)) if g.kind() == Kind::Pong => break g,
                Some(Ev::Msg(g)) => panic!("{how}: {:?}", error_of(&g)),
                Some(Ev::Ping) => {}
                other => panic!("{how}: {other:?}"),
            }
        };
        assert!(pong, "{how}");
        assert_eq!(pong_t0(&answer), Some(77), "{how}");
        assert_hub_still_serves(&hub);
    }
}

// ---- protocol messages -----------------------------------------------------------

#[test]
fn invalid_protocol_messages_get_bad_message_and_the_session_stays() {
    let hub = TestHub::dev();
    let bad_before = hub.metric("poselink_errors_total{kind=\"bad_message\"}");
    let mut c = Client::session(hub.addr, "");
    let me = c.member;
    let good = ping_msg(5, me);

    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 0x55;
    let mut flipped_body = good.clone();
    flipped_body[8] ^= 0x01;
    let mut unknown_kind = good.clone();
    unknown_kind[1] = 0x12;
    let mut kind_zero = good.clone();
    kind_zero[1] = 0x00;
    let mut reserved_flag = good.clone();
    reserved_flag[2] = 0x08;
    let welcome = encode(
        &Message::Welcome(Welcome {
            minor: 0,
            member: me,
            user: "mallory",
            resume: 1,
            server_time_us: 0,
            heartbeat_ms: 1,
            max_message: 1,
        }),
        0,
        me,
        3,
    );
    let bad_room = {
        let mut m = encode(
            &Message::Join(Join {
                room: "bad-room",
                role: Role::Member,
            }),
            0,
            me,
            4,
        );
        let at = m.windows(8).position(|w| w == b"bad-room").unwrap();
        m[at + 3] = b' '; // "bad room": not a name
        reseal(m)
    };
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("a bad CRC", bad_crc, 0x0c),
        ("a changed byte under the CRC", flipped_body, 0x0c),
        ("a truncated message", good[..10].to_vec(), 0x0c),
        ("a 2-byte message", good[..2].to_vec(), 0x0c),
        ("an empty message", Vec::new(), 0),
        ("an unknown kind byte 0x12", reseal(unknown_kind), 0x12),
        ("kind byte 0x00", reseal(kind_zero), 0x00),
        ("a reserved flag bit", reseal(reserved_flag), 0x0c),
        ("a welcome sent to the hub", welcome, Kind::Welcome as u8),
        ("a second hello", hello_msg("again"), Kind::Hello as u8),
        (
            "a join with an invalid room name",
            bad_room,
            Kind::Join as u8,
        ),
    ];
    for (k, (what, bytes, about)) in cases.iter().enumerate() {
        c.send_bytes(bytes);
        let e = c
            .recv_until(T, |g| g.kind() == Kind::Error)
            .unwrap_or_else(|| panic!("{what}: no error"));
        let (code, got_about, why) = error_of(&e).unwrap();
        assert_eq!((code, got_about), (BAD_MESSAGE, *about), "{what}: {why}");
        assert!(!why.is_empty(), "{what}");
        assert_answers_ping(&mut c, 100 + k as u64);
    }
    // A text message.
    c.ws.send(WsMessage::Text("{\"kind\":\"join\",\"room\":\"x\"}".into()))
        .unwrap();
    let e = c
        .recv_until(T, |g| g.kind() == Kind::Error)
        .expect("an error for text");
    let (code, _, why) = error_of(&e).unwrap();
    assert_eq!(code, BAD_MESSAGE);
    assert!(why.contains("binary"), "{why}");
    assert_answers_ping(&mut c, 1_000);
    assert!(c.closed.is_none());
    let bad_after = hub.metric("poselink_errors_total{kind=\"bad_message\"}");
    assert_eq!(bad_after, bad_before + cases.len() as f64 + 1.0);
    // Still a full session: it joins and relays.
    let h = c
        .join("after-bad-input", Role::Owner)
        .expect("a join after bad input");
    let mut other = Client::session(hub.addr, "");
    assert_eq!(other.join("after-bad-input", Role::Member).unwrap(), h);
    let sent = PoseStream::new(3).next(h, c.member).to_vec();
    c.send_bytes(&sent);
    assert_eq!(
        other
            .recv_until(T, |g| g.kind() == Kind::Pose)
            .expect("relayed")
            .bytes,
        sent
    );
    assert_hub_still_serves(&hub);

    // An unknown major version: UNSUPPORTED_VERSION and close 4002, in a session
    // and before the hello, whole or shorter than any 1.x message.
    let mut v2 = good.clone();
    v2[0] = 0x20;
    for (what, bytes, session) in [
        ("version 2.0", reseal(v2.clone()), true),
        ("version 2.0, 3 bytes", vec![0x20, 0x0c, 0x00], false),
    ] {
        let mut r = Raw::upgraded(hub.addr);
        if session {
            r.hello();
        }
        assert!(r.send_msg(&bytes));
        let o = expect_refused(&mut r, what, Some(UNSUPPORTED_VERSION), 4002);
        assert_eq!(o.errors()[0].1, 0x0c, "{what}: about the kind byte");
        assert_hub_still_serves(&hub);
    }
    // Before the hello: a broken message closes (4001), another kind first too (4003).
    let mut r = Raw::upgraded(hub.addr);
    assert!(r.send_msg(&good[..10]));
    expect_refused(&mut r, "a truncated first message", Some(BAD_MESSAGE), 4001);
    assert_hub_still_serves(&hub);
    let mut r = Raw::upgraded(hub.addr);
    assert!(r.send_msg(&good));
    let o = expect_refused(
        &mut r,
        "a ping before the hello",
        Some(UNAUTHENTICATED),
        4003,
    );
    assert_eq!(o.errors()[0].1, 0x0c);
    assert_hub_still_serves(&hub);
    assert_answers_ping(&mut c, 2_000);
}

// ---- flood -----------------------------------------------------------------------

#[test]
fn a_flood_is_rate_limited_then_closed_and_others_are_unaffected() {
    let hub = TestHub::start(HubConfig {
        rate_messages: 50,
        burst_messages: 20,
        flood_close_after: 200,
        ..HubConfig::local_dev()
    });
    // A calm pair, in a room, throughout.
    let mut p = Client::session(hub.addr, "");
    let mut q = Client::session(hub.addr, "");
    let h = p.join("calm", Role::Owner).unwrap();
    assert_eq!(q.join("calm", Role::Member).unwrap(), h);
    let mut poses = PoseStream::new(9);

    let mut f = Client::session(hub.addr, "");
    let drops_before = hub.metric("poselink_drops_total{reason=\"rate_limited\"}");
    for t0 in 1..=100u64 {
        let m = ping_msg(t0, f.member);
        f.send_bytes(&m);
    }
    let (mut pongs, mut limited) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        let Some(g) = f.recv(Duration::from_millis(300)) else {
            break;
        };
        match g.kind() {
            Kind::Pong => pongs += 1,
            Kind::Error => {
                let (code, _, why) = error_of(&g).unwrap();
                assert_eq!(code, RATE_LIMITED, "{why}");
                assert!(why.contains("rate"), "{why}");
                limited += 1;
            }
            k => panic!("{k:?}"),
        }
    }
    assert!(limited >= 1, "the flooder is told it is rate limited");
    assert!(
        (15..100).contains(&pongs),
        "about the burst is answered, not all: {pongs}"
    );
    assert!(f.closed.is_none(), "not closed yet: {:?}", f.closed);
    assert!(hub.metric("poselink_drops_total{reason=\"rate_limited\"}") > drops_before);
    // The calm pair meanwhile.
    let sent = poses.next(h, q.member).to_vec();
    q.send_bytes(&sent);
    assert_eq!(
        p.recv_until(T, |g| g.kind() == Kind::Pose)
            .expect("relayed during the flood")
            .bytes,
        sent
    );
    // The flooder, slowed down, is served again.
    std::thread::sleep(Duration::from_millis(200));
    assert_answers_ping(&mut f, 500);

    // 1000 more at once: closed with 4012.
    let limited_before = hub.metric("poselink_errors_total{kind=\"rate_limited\"}");
    for t0 in 1_000..2_000u64 {
        let m = ping_msg(t0, f.member);
        if f.ws.write(WsMessage::Binary(m.into())).is_err() {
            break;
        }
    }
    let _ = f.ws.flush();
    let mut errors = Vec::new();
    let deadline = Instant::now() + T;
    while f.closed.is_none() && Instant::now() < deadline {
        if let Some(g) = f.recv(Duration::from_millis(100))
            && let Some(e) = error_of(&g)
        {
            errors.push(e);
        }
    }
    let (code, why) = f.closed.clone().expect("the flooder is closed");
    assert_eq!(code, 4012, "{why}");
    assert!(errors.iter().any(|e| e.0 == RATE_LIMITED), "{errors:?}");
    assert!(hub.metric("poselink_errors_total{kind=\"rate_limited\"}") > limited_before);

    // The others are unaffected.
    let sent = poses.next(h, q.member).to_vec();
    q.send_bytes(&sent);
    let got = p
        .recv_until(T, |g| g.kind() == Kind::Pose)
        .expect("relayed after the flood");
    assert_eq!(got.bytes, sent);
    assert!(p.closed.is_none() && q.closed.is_none());
    assert_answers_ping(&mut p, 1);
    assert_answers_ping(&mut q, 2);
    assert_hub_still_serves(&hub);
}

// ---- abrupt disconnects ----------------------------------------------------------

#[test]
fn vanishing_clients_are_cleaned_up_and_announced() {
    let hub = TestHub::dev();
    let mut w = Client::session(hub.addr, "");
    let h = w.join("abrupt", Role::Owner).unwrap();

    // A member that sends half a frame and vanishes (FIN). (The pause keeps its
    // bytes and its FIN apart: see `a_peer_that_writes_and_closes_at_once_is_noticed`.)
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    assert_eq!(r.join("abrupt", member), h);
    let pose = PoseStream::new(4).next(h, member).to_vec();
    let f = frame(FIN | OP_BIN, &pose);
    assert!(r.write(&f[..f.len() / 2]));
    std::thread::sleep(Duration::from_millis(50));
    let gone = Instant::now();
    drop(r);
    let left = w
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT for the vanished member");
    assert!(
        gone.elapsed() < Duration::from_secs(1),
        "announced after {:?}",
        gone.elapsed()
    );
    assert_eq!(
        member_left(&left),
        Some((member, LeaveReason::Disconnected))
    );
    assert_eq!(left.header().room, h);
    assert_hub_still_serves(&hub);

    // A member that vanishes with unread data (the kernel resets the connection).
    let mut r = Raw::upgraded(hub.addr);
    let member = r.hello();
    assert_eq!(r.join("abrupt", member), h);
    w.recv_until(T, |g| g.kind() == Kind::MemberJoined)
        .expect("member joined");
    let io_before = hub.metric("poselink_errors_total{kind=\"io\"}");
    // The hub's answer to this ping stays unread: closing then sends a reset.
    assert!(r.send_msg(&ping_msg(9, member)));
    assert!(r.write(&f[..3]));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    let left = w
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT for the reset member");
    assert_eq!(
        member_left(&left),
        Some((member, LeaveReason::Disconnected))
    );
    assert!(
        hub.metric("poselink_errors_total{kind=\"io\"}") > io_before,
        "a reset is a socket error"
    );
    assert_hub_still_serves(&hub);

    // Vanishing mid-request, right after the upgrade, and mid-message.
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(b"GET / HTTP/1.1\r\nUpgr"));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    assert_hub_still_serves(&hub);
    drop(Raw::upgraded(hub.addr));
    assert_hub_still_serves(&hub);
    let mut r = Raw::upgraded(hub.addr);
    r.hello();
    assert!(r.write(&[frame(OP_BIN, &[1u8; 300]), frame(OP_CONT, &[2u8; 300])].concat()));
    assert!(r.write(&frame_header(FIN | OP_CONT, 300, Some(MASK))));
    std::thread::sleep(Duration::from_millis(50));
    drop(r);
    assert_hub_still_serves(&hub);

    // Nothing leaked: only the watcher (and the metrics request) remain.
    wait_metric(&hub, "poselink_sessions", 1.0);
    wait_metric(&hub, "poselink_connections", 2.0);
    assert_answers_ping(&mut w, 3);
}

/// A peer that writes its last bytes and closes at once: its bytes and its FIN
/// arrive together, before the hub reads. The hub must still see the end of the
/// stream at once, in every state, not when a timeout fires.
#[test]
fn a_peer_that_writes_and_closes_at_once_is_noticed() {
    let hub = TestHub::dev(); // handshake 5 s, heartbeat 5 s
    let mut w = Client::session(hub.addr, "");
    let h = w.join("write-and-close", Role::Owner).unwrap();
    let half = frame(FIN | OP_BIN, &ping_msg(1, 0));
    let half = &half[..half.len() / 2];
    for round in 0..10 {
        // Part of a request head, then gone.
        let mut r = Raw::tcp(hub.addr);
        assert!(r.write(b"GET / HTTP/1.1\r\nUpgr"));
        drop(r);
        let open = poll_metric(&hub, "poselink_connections", 2.0, Duration::from_secs(1));
        assert_eq!(open, 2.0, "round {round}: a half request lingers");
        // Upgraded, half a frame, gone.
        let mut r = Raw::upgraded(hub.addr);
        assert!(r.write(half));
        drop(r);
        let open = poll_metric(&hub, "poselink_connections", 2.0, Duration::from_secs(1));
        assert_eq!(open, 2.0, "round {round}: a half frame lingers");
        // A room member: half a frame, gone; the room hears of it at once.
        let mut r = Raw::upgraded(hub.addr);
        let member = r.hello();
        assert_eq!(r.join("write-and-close", member), h);
        assert!(r.write(half));
        drop(r);
        let left = w.recv_until(Duration::from_secs(1), |g| {
            member_left(g).is_some_and(|l| l.0 == member)
        });
        assert!(left.is_some(), "round {round}: MEMBER_LEFT within 1 s");
    }
    assert_hub_still_serves(&hub);
}

// ---- heartbeat -------------------------------------------------------------------

/// A session silent for 3 heartbeats is closed; a reading (auto-ponging) one is not.
#[test]
fn heartbeat_closes_silent_sessions_only() {
    let hub = TestHub::start(HubConfig {
        heartbeat_ms: 200,
        ..HubConfig::local_dev()
    });
    let mut a = Client::session(hub.addr, "");
    let h = a.join("heartbeat", Role::Owner).unwrap();
    let mut idle = Client::session(hub.addr, ""); // no room, only reading
    let hb_before = hub.metric("poselink_errors_total{kind=\"heartbeat_timeout\"}");

    let mut s = Raw::upgraded(hub.addr);
    let member = s.hello();
    assert_eq!(s.join("heartbeat", member), h);
    let t0 = Instant::now(); // s's last bytes; from now on it neither reads nor writes
    // Both readers are polled in turn (a tungstenite client pongs when it reads).
    let mut left = None;
    while left.is_none() && t0.elapsed() < T {
        if let Some(g) = a.recv(Duration::from_millis(50))
            && member_left(&g).is_some_and(|l| l.0 == member)
        {
            left = Some((g, t0.elapsed()));
        }
        let _ = idle.recv(Duration::from_millis(50));
    }
    let (left, after) = left.expect("MEMBER_LEFT for the silent member");
    assert!(
        after >= Duration::from_millis(550) && after <= Duration::from_millis(1_300),
        "closed {after:?} after its last bytes (3 heartbeats of 200 ms + a tick)"
    );
    assert_eq!(left.header().room, h);
    // What the silent client finds when it looks: pings, then GOING_AWAY and 1001.
    let o = s.drain(T);
    assert_eq!(o.close_code(), Some(1001), "{o:?}");
    assert!(
        o.errors().iter().any(|e| e.0 == GOING_AWAY),
        "{:?}",
        o.errors()
    );
    assert!(o.ended.is_some(), "{o:?}");
    assert!(hub.metric("poselink_errors_total{kind=\"heartbeat_timeout\"}") > hb_before);

    // The readers, over more than the same time, stay.
    while t0.elapsed() < Duration::from_millis(1_600) {
        let _ = a.recv(Duration::from_millis(50));
        let _ = idle.recv(Duration::from_millis(50));
    }
    assert!(a.closed.is_none(), "{:?}", a.closed);
    assert!(idle.closed.is_none(), "{:?}", idle.closed);
    assert_answers_ping(&mut a, 1);
    assert_answers_ping(&mut idle, 2);
    assert_hub_still_serves(&hub);
}

/// docs/PROTOCOL.md §6.2: `TimedOut` is "it stopped answering (heartbeat)".
#[test]
fn a_heartbeat_timeout_is_announced_as_timed_out() {
    let hub = TestHub::start(HubConfig {
        heartbeat_ms: 200,
        ..HubConfig::local_dev()
    });
    let mut a = Client::session(hub.addr, "");
    let h = a.join("heartbeat", Role::Owner).unwrap();
    let mut s = Raw::upgraded(hub.addr);
    let member = s.hello();
    assert_eq!(s.join("heartbeat", member), h);
    let left = a
        .recv_until(T, |g| member_left(g).is_some_and(|l| l.0 == member))
        .expect("MEMBER_LEFT");
    assert_eq!(member_left(&left), Some((member, LeaveReason::TimedOut)));
}

// ---- shutdown --------------------------------------------------------------------

#[test]
fn shutdown_tells_everyone_going_away() {
    let hub = TestHub::dev();
    let mut s1 = Client::session(hub.addr, "");
    let mut s2 = Client::session(hub.addr, "");
    let h = s1.join("shutdown", Role::Owner).unwrap();
    assert_eq!(s2.join("shutdown", Role::Member).unwrap(), h);
    let mut before_hello = Raw::upgraded(hub.addr);
    let mut plain_tcp = Raw::tcp(hub.addr);
    std::thread::sleep(Duration::from_millis(50)); // let the hub accept them all

    let stopper = std::thread::spawn(move || {
        let start = Instant::now();
        let report = hub.stop(); // panics unless the hub's thread returns Ok
        (report, start.elapsed())
    });
    for (k, c) in [&mut s1, &mut s2].into_iter().enumerate() {
        let mut errors = Vec::new();
        let deadline = Instant::now() + T;
        while c.closed.is_none() && Instant::now() < deadline {
            if let Some(g) = c.recv(Duration::from_millis(100))
                && let Some(e) = error_of(&g)
            {
                errors.push(e);
            }
        }
        assert!(
            errors.iter().any(|e| e.0 == GOING_AWAY),
            "session {k}: {errors:?}"
        );
        assert_eq!(c.closed.as_ref().map(|c| c.0), Some(1001), "session {k}");
    }
    expect_refused(
        &mut before_hello,
        "upgraded, no hello",
        Some(GOING_AWAY),
        1001,
    );
    let o = plain_tcp.drain(T);
    assert!(
        o.ended.is_some(),
        "a connection still in HTTP is closed: {o:?}"
    );

    let (report, took) = stopper.join().expect("the hub stops cleanly");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    assert!(report.stats.accepted >= 4, "{:?}", report.stats);
    assert_eq!(report.stats.sessions_opened, 2);
    assert!(
        report.stats.errors[GOING_AWAY as usize] >= 3,
        "{:?}",
        report.stats.errors
    );
}

// ---- pipelining ------------------------------------------------------------------

/// A client that sends its hello and a lot more right behind the upgrade request
/// (more than one read of the hub's buffer) gets every answer without stalling.
#[test]
fn data_pipelined_behind_the_upgrade_is_not_left_unread() {
    let hub = TestHub::dev();
    let mut bytes = upgrade_request();
    bytes.extend(frame(FIN | OP_BIN, &hello_msg("pipeliner")));
    // Within the default burst (500 messages, 1 MiB), more than a receive buffer.
    let n = 400u64;
    for t0 in 1..=n {
        bytes.extend(frame(FIN | OP_BIN, &padded_ping(t0, 0, 250)));
    }
    assert!(bytes.len() > 100_000);
    let mut r = Raw::tcp(hub.addr);
    assert!(r.write(&bytes));
    r.read_upgrade_response();
    let mut pongs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while (pongs.len() as u64) < n && Instant::now() < deadline {
        match r.next(Duration::from_millis(100)) {
            Some(Ev::Msg(g)) if g.kind() == Kind::Pong => pongs.push(pong_t0(&g).unwrap()),
            Some(Ev::Msg(g)) => assert_eq!(g.kind(), Kind::Welcome, "{:?}", error_of(&g)),
            Some(Ev::End(e)) => panic!("{e} after {} pongs", pongs.len()),
            _ => {}
        }
    }
    assert_eq!(
        pongs.len() as u64,
        n,
        "every pipelined ping is answered within 3 s"
    );
    assert_eq!(pongs, (1..=n).collect::<Vec<u64>>());
    assert_hub_still_serves(&hub);
}
