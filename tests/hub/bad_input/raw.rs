//! A raw, misbehaving client and HTTP by hand: bytes written as they are, so
//! that every violation can be sent.

use super::*;

// ---- a raw, misbehaving client ---------------------------------------------------

/// What a raw client read from the hub.
#[derive(Debug)]
pub(super) enum Ev {
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
pub(super) struct Outcome {
    /// Protocol messages before the close frame.
    pub(super) msgs: Vec<Got>,
    /// Protocol messages after the close frame (there must be none).
    pub(super) after_close: usize,
    pub(super) pongs: Vec<Vec<u8>>,
    pub(super) close: Option<(u16, String)>,
    pub(super) close_after: Option<Duration>,
    pub(super) ended: Option<&'static str>,
    pub(super) ended_after: Option<Duration>,
}

impl Outcome {
    pub(super) fn errors(&self) -> Vec<(u16, u8, String)> {
        self.msgs.iter().filter_map(error_of).collect()
    }

    pub(super) fn close_code(&self) -> Option<u16> {
        self.close.as_ref().map(|c| c.0)
    }
}

pub(super) struct Raw {
    pub(super) s: TcpStream,
    pub(super) buf: Vec<u8>,
    pub(super) end: Option<&'static str>,
    pub(super) tmp: Vec<u8>,
}

impl Raw {
    /// A TCP connection, nothing sent.
    pub(super) fn tcp(addr: SocketAddr) -> Raw {
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
    pub(super) fn upgraded(addr: SocketAddr) -> Raw {
        let mut r = Raw::tcp(addr);
        assert!(r.write(&upgrade_request()));
        r.read_upgrade_response();
        r
    }

    /// Reads the `101` answer; keeps what follows it.
    pub(super) fn read_upgrade_response(&mut self) {
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
    pub(super) fn write(&mut self, bytes: &[u8]) -> bool {
        self.s.write_all(bytes).is_ok()
    }

    /// Sends a protocol message as one masked binary frame.
    pub(super) fn send_msg(&mut self, m: &[u8]) -> bool {
        self.write(&frame(FIN | OP_BIN, m))
    }

    /// One read (up to the 20 ms read timeout).
    pub(super) fn fill(&mut self) {
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
    pub(super) fn parse(&mut self) -> Option<Ev> {
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
    pub(super) fn next(&mut self, timeout: Duration) -> Option<Ev> {
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
    pub(super) fn recv_msg(
        &mut self,
        timeout: Duration,
        mut pred: impl FnMut(&Got) -> bool,
    ) -> Option<Got> {
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
    pub(super) fn hello(&mut self) -> u16 {
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
    pub(super) fn join(&mut self, room: &str, member: u16) -> u16 {
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
    pub(super) fn drain(&mut self, timeout: Duration) -> Outcome {
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
pub(super) fn expect_refused(raw: &mut Raw, what: &str, error: Option<u16>, close: u16) -> Outcome {
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

pub(super) struct HttpAnswer {
    pub(super) status: Option<u16>,
    pub(super) head: String,
    pub(super) body: String,
    /// The hub ended the connection (EOF or reset) within the wait.
    pub(super) closed: bool,
    pub(super) elapsed: Duration,
}

/// Sends `bytes` on a new connection and reads until the hub closes it.
pub(super) fn http_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> HttpAnswer {
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

pub(super) fn xorshift_bytes(seed: u32, n: usize) -> Vec<u8> {
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
pub(super) fn tls_client_hello() -> Vec<u8> {
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
