//! The harness of the hub simulations: a [`Core`] and scripted in-memory peers
//! on a clock the test advances by hand (quinn-proto's `tests/util.rs` shape).
//! A peer writes masked WebSocket frames of protocol messages into the buffer the
//! core lends, and parses the frames the core lends it back. Each peer's
//! "socket" takes `window` bytes per round (0: a peer that does not read);
//! `auto_pong` answers pings as a WebSocket library does. Nothing here sleeps or
//! opens a socket; every loop is bounded by a count.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;

use crate::hub::HubConfig;
use crate::hub::core::{Closed, ConnId, Core, Event};
use crate::proto::{
    AudioChunk, Compressor, EncoderConfig, Header, Hello, Join, Kind, Message, Packet, PoseEncoder,
    PoseFrame, Role, encode_audio, encode_control,
};
use crate::token::{Claims, Grant, TokenKey};
use crate::ws::{self, FrameKind, Parsed};

/// The secret of secured simulations.
pub const SECRET: &str = "simulation-secret-simulation-secret-0123";
/// The Unix time, seconds, when a simulation starts.
pub const UNIX_START: u64 = 1_800_000_000;
/// The monotonic time, µs, when a simulation starts.
pub const T0: u64 = 10_000_000;
/// Steps of simulated time: half the core's housekeeping period.
const STEP_US: u64 = 10_000;
/// Rounds of delivery in one `pump`, at most (each round is one write per peer).
const MAX_ROUNDS: usize = 256;

/// A small hub: 16 connections, 8 rooms, queues of 8, anonymous access, and
/// round timeouts (handshake 1 s, heartbeat 1 s, stuck 2 s).
pub fn config() -> HubConfig {
    HubConfig {
        max_connections: 16,
        max_rooms: 8,
        max_members: 8,
        handshake_timeout_ms: 1_000,
        heartbeat_ms: 1_000,
        stuck_timeout_ms: 2_000,
        room_grace_ms: 5_000,
        queue_depth: 8,
        ..HubConfig::local_dev()
    }
}

/// [`config`] with tokens required.
pub fn secured() -> HubConfig {
    HubConfig {
        dev: false,
        secret: Some(SECRET.into()),
        ..config()
    }
}

/// A frame the core sent a peer.
#[derive(Clone, Debug)]
pub enum Frame {
    /// A binary protocol message.
    Msg(Vec<u8>),
    /// A text message (JSON mode).
    Text(String),
    /// A WebSocket ping, with its payload.
    Ping(Vec<u8>),
    /// A WebSocket pong, with its payload.
    Pong(Vec<u8>),
    /// A close frame: code and reason.
    Close(u16, String),
}

impl Frame {
    /// The protocol message's header, for a binary message.
    pub fn header(&self) -> Option<Header> {
        match self {
            Frame::Msg(b) => Some(
                Packet::new_checked(&b[..])
                    .expect("a valid message")
                    .header(),
            ),
            _ => None,
        }
    }

    /// The protocol message's kind, for a binary message.
    pub fn kind(&self) -> Option<Kind> {
        self.header().map(|h| h.kind)
    }

    /// Parses a binary message and hands it to `f`.
    pub fn with<R>(&self, f: impl FnOnce(Message<'_>) -> R) -> Option<R> {
        let Frame::Msg(b) = self else {
            return None;
        };
        let p = Packet::new_checked(&b[..]).expect("a valid message");
        let mut scratch = vec![0u8; 70_000];
        Some(f(Message::parse(&p, &mut scratch).expect("a valid message")))
    }

    /// The error's (code, about, reason), for an error message.
    pub fn error(&self) -> Option<(u16, u8, String)> {
        self.with(|m| match m {
            Message::Error(e) => Some((e.code.0, e.about, e.reason.to_string())),
            _ => None,
        })
        .flatten()
    }
}

/// One simulated client.
pub struct Peer {
    /// Its connection in the core.
    pub conn: ConnId,
    /// The member id the welcome gave (0 before).
    pub member: u16,
    /// The resume id the welcome gave.
    pub resume: u64,
    /// Bytes its socket takes per round; 0: it does not read.
    pub window: usize,
    /// Answers pings with pongs.
    pub auto_pong: bool,
    /// Frames received, not yet looked at.
    pub frames: VecDeque<Frame>,
    /// The core asked for the write half to be shut (all written, closing).
    pub shut: bool,
    /// The core closed the transport, or the peer hung up.
    pub closed: bool,
    seq: u32,
    mask: u32,
    inbox: Vec<u8>,
}

/// A hub core and its peers on a simulated clock.
pub struct Sim {
    /// The core under test.
    pub core: Core,
    /// The simulated monotonic time, µs.
    pub now: u64,
    /// Every peer that ever connected, by index.
    pub peers: Vec<Peer>,
    key: Option<TokenKey>,
}

impl Sim {
    /// A core for `cfg` (its `secret` becomes the token key), at [`T0`].
    pub fn new(cfg: HubConfig) -> Sim {
        let key = cfg
            .secret
            .as_ref()
            .map(|s| TokenKey::hs256(s.as_bytes()).unwrap());
        let core_key = cfg
            .secret
            .as_ref()
            .map(|s| TokenKey::hs256(s.as_bytes()).unwrap());
        Sim {
            core: Core::new(&cfg, core_key, T0, UNIX_START * 1_000_000)
                .expect("a valid configuration"),
            now: T0,
            peers: Vec::new(),
            key,
        }
    }

    /// A core with anonymous access ([`config`]).
    pub fn dev() -> Sim {
        Sim::new(config())
    }

    /// The simulated Unix time, seconds.
    pub fn unix_secs(&self) -> u64 {
        UNIX_START + (self.now - T0) / 1_000_000
    }

    /// A token for `user` granting `grants` (room, role, may create), expiring
    /// `ttl_secs` from the simulated now.
    pub fn token(&self, user: &str, grants: &[(&str, Role, bool)], ttl_secs: i64) -> String {
        let key = self.key.as_ref().expect("a secured simulation");
        let exp = (self.unix_secs() as i64 + ttl_secs).max(0) as u64;
        let rooms = grants
            .iter()
            .map(|&(room, role, create)| Grant {
                room: room.into(),
                role,
                create,
            })
            .collect();
        let claims = Claims {
            sub: user.into(),
            exp,
            rooms,
        };
        key.mint(&claims).unwrap()
    }

    // ---- connections -----------------------------------------------------------

    /// A peer whose HTTP upgrade the driver completed (no hello yet).
    pub fn connect(&mut self) -> usize {
        self.connect_with(false)
    }

    /// [`connect`](Self::connect); `json`: it chose the JSON subprotocol.
    pub fn connect_with(&mut self, json: bool) -> usize {
        let k = self.peers.len();
        let peer: SocketAddr = format!("10.0.0.{}:{}", k % 250 + 1, 40_000 + k)
            .parse()
            .unwrap();
        let conn = self
            .core
            .handle_open(self.now, peer, json)
            .expect("a free slot");
        self.peers.push(Peer {
            conn,
            member: 0,
            resume: 0,
            window: usize::MAX,
            auto_pong: true,
            frames: VecDeque::new(),
            shut: false,
            closed: false,
            seq: 0,
            mask: 0x9e37_79b9 ^ k as u32,
            inbox: Vec::new(),
        });
        k
    }

    /// A peer with an accepted hello (anonymous).
    pub fn session(&mut self) -> usize {
        let p = self.connect();
        self.hello(p, "").expect("welcome");
        p
    }

    /// A session that joined `room` as `role`; (peer, room handle).
    pub fn member_of(&mut self, room: &str, role: Role) -> (usize, u16) {
        let p = self.session();
        let h = self.join(p, room, role).expect("joined");
        (p, h)
    }

    /// The peer's transport ends (it vanished).
    pub fn hang_up(&mut self, p: usize) {
        self.peers[p].closed = true;
        self.core
            .handle_closed(self.now, self.peers[p].conn, Closed::Peer);
        self.pump();
    }

    // ---- sending ---------------------------------------------------------------

    /// Bytes from peer `p` arrive at the core (in as many reads as they take).
    pub fn feed(&mut self, p: usize, mut bytes: &[u8]) {
        let conn = self.peers[p].conn;
        for _ in 0..1_000 {
            if bytes.is_empty() || self.peers[p].closed {
                return;
            }
            let buf = self.core.recv_buffer(conn);
            let n = buf.len().min(bytes.len());
            assert!(n > 0, "the core lends no receive buffer");
            buf[..n].copy_from_slice(&bytes[..n]);
            let mut more = self.core.handle_received(self.now, conn, n);
            // A receiver's queue filled: its output goes first, as the
            // driver writes it, then the rest of these bytes.
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

    /// [`feed`](Self::feed), then deliver what the core answers.
    pub fn write(&mut self, p: usize, bytes: &[u8]) {
        self.feed(p, bytes);
        self.pump();
    }

    /// One masked frame from peer `p`.
    pub fn frame(&mut self, p: usize, kind: FrameKind, fin: bool, payload: &[u8]) -> Vec<u8> {
        let peer = &mut self.peers[p];
        peer.mask ^= peer.mask << 13;
        peer.mask ^= peer.mask >> 17;
        peer.mask ^= peer.mask << 5;
        let mask = peer.mask.to_le_bytes();
        let mut v = vec![0u8; 14 + payload.len()];
        let n = ws::write_client_header(&mut v, kind, fin, payload.len(), mask).unwrap();
        v[n..n + payload.len()].copy_from_slice(payload);
        ws::mask_payload(&mut v[n..n + payload.len()], mask);
        v.truncate(n + payload.len());
        v
    }

    /// A protocol message from peer `p`, as one binary frame.
    pub fn send_bytes(&mut self, p: usize, msg: &[u8]) {
        let f = self.frame(p, FrameKind::Binary, true, msg);
        self.write(p, &f);
    }

    /// A control message from peer `p` about `room`, with its own sender id.
    pub fn send(&mut self, p: usize, room: u16, msg: &Message<'_>) {
        let peer = &mut self.peers[p];
        peer.seq += 1;
        let h = Header::new(msg.kind(), room, peer.member, peer.seq, self.now);
        let mut buf = vec![0u8; 70_000];
        let n = encode_control(&h, msg, &mut buf).expect("encode");
        self.send_bytes(p, &buf[..n]);
    }

    /// Says hello; Ok(member) on a welcome, Err((code, reason)) on an error.
    pub fn hello(&mut self, p: usize, token: &str) -> Result<u16, (u16, String)> {
        self.hello_resume(p, token, 0).map(|(m, _)| m)
    }

    /// Says hello presenting `resume`; Ok((member, new resume id)).
    pub fn hello_resume(
        &mut self,
        p: usize,
        token: &str,
        resume: u64,
    ) -> Result<(u16, u64), (u16, String)> {
        let hello = Message::Hello(Hello {
            minor: 0,
            token,
            resume,
            client: "sim",
            stream: 0,
        });
        self.send(p, 0, &hello);
        let got = self
            .next_msg(p, |k| matches!(k, Kind::Welcome | Kind::Error))
            .ok_or((0, "no answer to the hello".to_string()))?;
        if let Some((code, _, why)) = got.error() {
            return Err((code, why));
        }
        let (member, id) = got
            .with(|m| match m {
                Message::Welcome(w) => (w.member, w.resume),
                _ => unreachable!(),
            })
            .unwrap();
        self.peers[p].member = member;
        self.peers[p].resume = id;
        Ok((member, id))
    }

    /// Joins `room` as `role`; Ok(room handle) on the snapshot.
    pub fn join(&mut self, p: usize, room: &str, role: Role) -> Result<u16, (u16, String)> {
        self.send(p, 0, &Message::Join(Join { room, role }));
        let got = self
            .next_msg(p, |k| matches!(k, Kind::RoomSnapshot | Kind::Error))
            .ok_or((0, "no answer to the join".to_string()))?;
        match got.error() {
            Some((code, _, why)) => Err((code, why)),
            None => Ok(got.header().unwrap().room),
        }
    }

    // ---- receiving and time ----------------------------------------------------

    /// Acts on the core's events and delivers its output to every peer, each
    /// taking its window per round, until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            while let Some(ev) = self.core.poll_event() {
                let Some(peer) = self
                    .peers
                    .iter_mut()
                    .find(|p| p.conn == ev.conn() && !p.closed)
                else {
                    panic!("an event for no open peer: {ev:?}");
                };
                match ev {
                    Event::Shutdown(_) => peer.shut = true,
                    Event::Close(_) => peer.closed = true,
                }
            }
            // Every peer is written each round; the list only says who has news.
            while self.core.poll_output().is_some() {}
            let mut moved = false;
            for p in 0..self.peers.len() {
                moved |= self.deliver(p);
            }
            if !moved {
                return;
            }
        }
        panic!("output still moving after {MAX_ROUNDS} rounds");
    }

    /// Writes to peer `p` what its window takes; parses it; answers pings.
    fn deliver(&mut self, p: usize) -> bool {
        let peer = &mut self.peers[p];
        if peer.closed || peer.window == 0 {
            return false;
        }
        let mut took = 0;
        {
            let mut slices = [IoSlice::new(&[]); 16];
            let k = self.core.poll_transmit(peer.conn, &mut slices);
            for s in &slices[..k] {
                let t = s.len().min(peer.window - took);
                peer.inbox.extend_from_slice(&s[..t]);
                took += t;
                if took == peer.window {
                    break;
                }
            }
        }
        if took == 0 {
            return false;
        }
        self.core.handle_written(self.now, peer.conn, took);
        let mut pongs = Vec::new();
        for _ in 0..100_000 {
            match ws::parse_server_frame(&mut peer.inbox, 1 << 20).expect("a valid server frame") {
                Parsed::Need(_) => break,
                Parsed::Frame(f) => {
                    assert!(f.fin, "the hub never fragments");
                    let payload = peer.inbox[f.header_len..f.len()].to_vec();
                    peer.inbox.drain(..f.len());
                    let frame = match f.kind {
                        FrameKind::Binary => Frame::Msg(payload),
                        FrameKind::Text => Frame::Text(String::from_utf8(payload).unwrap()),
                        FrameKind::Ping => {
                            pongs.push(payload.clone());
                            Frame::Ping(payload)
                        }
                        FrameKind::Pong => Frame::Pong(payload),
                        FrameKind::Close => {
                            let (code, why) = ws::parse_close(&payload).unwrap();
                            Frame::Close(code, why.to_string())
                        }
                        FrameKind::Continuation => panic!("a continuation from the hub"),
                    };
                    peer.frames.push_back(frame);
                }
            }
        }
        if self.peers[p].auto_pong {
            for payload in pongs {
                let f = self.frame(p, FrameKind::Pong, true, &payload);
                self.feed(p, &f);
            }
        }
        true
    }

    /// Advances the clock by `ms`, in steps, running the core's timers and
    /// delivering at each.
    pub fn advance(&mut self, ms: u64) {
        let end = self.now + ms * 1000;
        while self.now < end {
            self.now = (self.now + STEP_US).min(end);
            if self.core.poll_timeout().is_some_and(|t| self.now >= t) {
                self.core.handle_timeout(self.now);
            }
            self.pump();
        }
    }

    /// The next protocol message of a kind `pred` accepts (others before it are
    /// dropped), if peer `p` has one.
    pub fn next_msg(&mut self, p: usize, mut pred: impl FnMut(Kind) -> bool) -> Option<Frame> {
        while let Some(f) = self.peers[p].frames.pop_front() {
            if f.kind().is_some_and(&mut pred) {
                return Some(f);
            }
        }
        None
    }

    /// Every frame peer `p` got and has not looked at.
    pub fn take(&mut self, p: usize) -> Vec<Frame> {
        self.peers[p].frames.drain(..).collect()
    }

    /// The protocol messages of kind `kind` among what peer `p` got (the rest
    /// is dropped).
    pub fn take_kind(&mut self, p: usize, kind: Kind) -> Vec<Frame> {
        self.take(p)
            .into_iter()
            .filter(|f| f.kind() == Some(kind))
            .collect()
    }

    /// The error messages peer `p` got (the rest is dropped).
    pub fn take_errors(&mut self, p: usize) -> Vec<(u16, u8, String)> {
        self.take(p).iter().filter_map(Frame::error).collect()
    }

    /// The close frame peer `p` got, if any (what is before it is dropped).
    pub fn close_of(&mut self, p: usize) -> Option<(u16, String)> {
        self.take(p).into_iter().find_map(|f| match f {
            Frame::Close(c, why) => Some((c, why)),
            _ => None,
        })
    }
}

/// A pose publisher: frames with a little motion through the real encoder.
pub struct Poses {
    /// The encoder (tests force keyframes through it).
    pub encoder: PoseEncoder,
    seq: u32,
    buf: Vec<u8>,
}

impl Poses {
    /// Keyframes every `keyframe_every` frames of 10 ms capture time.
    pub fn new(keyframe_every: u64) -> Poses {
        Poses {
            encoder: PoseEncoder::new(EncoderConfig {
                keyframe_interval_us: keyframe_every * 10_000,
                ..EncoderConfig::default()
            }),
            seq: 0,
            buf: vec![0u8; 4096],
        }
    }

    /// The next frame for `room` from `sender`, encoded.
    pub fn next(&mut self, room: u16, sender: u16) -> Vec<u8> {
        self.seq += 1;
        let mut f = PoseFrame::zeroed();
        f.seq = self.seq;
        f.capture_ts_us = self.seq as u64 * 10_000;
        for (k, lm) in f.landmarks.iter_mut().enumerate() {
            let t = (self.seq as f32 * 0.01 + k as f32 * 0.02) % 0.5;
            lm.x = 0.25 + t;
            lm.y = 0.5 - t / 2.0;
            lm.z = 0.0;
            lm.visibility = 1.0;
            lm.presence = 1.0;
        }
        let n = self
            .encoder
            .encode(&f, room, sender, &mut self.buf)
            .unwrap();
        self.buf[..n].to_vec()
    }
}

/// An acknowledgement's (room, kind, seq), if `f` is one.
pub fn ack(f: &Frame) -> Option<(u16, u8, u32)> {
    let room = f.header()?.room;
    f.with(|m| match m {
        Message::Ack(a) => Some((room, a.kind, a.seq)),
        _ => None,
    })
    .flatten()
}

/// Whether a pose message decodes alone (a keyframe or a raw frame).
pub fn is_keyframe(msg: &[u8]) -> bool {
    let p = Packet::new_checked(msg).unwrap();
    let mut scratch = vec![0u8; 8192];
    matches!(
        Message::parse(&p, &mut scratch),
        Ok(Message::Pose(pose)) if !matches!(pose.coding, crate::proto::PoseCoding::Delta { .. })
    )
}

/// An audio chunk of 20 ms silence with `seq`, for `room` from `sender`.
pub fn audio(room: u16, sender: u16, seq: u32) -> Vec<u8> {
    let mut chunk = AudioChunk::silence(48_000, 1, 960);
    chunk.seq = seq;
    chunk.capture_ts_us = seq as u64 * 20_000;
    let mut plain = Compressor::new(usize::MAX);
    let mut buf = vec![0u8; 4096];
    let n = encode_audio(&chunk, room, sender, &mut plain, &mut buf).unwrap();
    buf.truncate(n);
    buf
}
