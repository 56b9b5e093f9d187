//! Connecting one member of the load, blocking (this is set-up, not the load):
//! a TCP connection with timeouts, TLS for a `wss://` load, tungstenite's
//! client handshake, then the
//! member's client [`Session`] says hello and joins its room over the same
//! socket, and the answers are read until the room is joined or the hub says
//! no. Every buffer of the member is allocated here.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::Duration;

use mio::net::TcpStream;
use poselink_hal::{Clock, MonotonicClock};

use super::{LoadConfig, LoadError, LoadErrorKind};
use crate::client::{Event, Receive, RoomId, Session, SessionConfig, Transport};
use crate::proto::Role;
use crate::tls::{Stream, TlsLink};

/// Time allowed to connect, upgrade, and be welcomed and joined.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Receive buffer per connection: one read takes up to its free space; media
/// frames (at most 2 KiB) always fit, a larger control frame is skipped.
const RX: usize = 16 * 1024;
/// Transmit buffer per connection: what the socket has not taken yet.
const TX: usize = 16 * 1024;
/// Never, for the session's timers: the load runs no heartbeat of its own.
const NEVER: u64 = u64::MAX / 4;

/// One member: its connection, its session and its publisher's state.
pub(super) struct Member {
    pub(super) stream: Stream<TcpStream>,
    pub(super) session: Box<Session>,
    /// The member's number over the whole load.
    pub(super) global: usize,
    /// Its room.
    pub(super) room: RoomId,
    pub(super) pose_seq: u32,
    pub(super) audio_seq: u32,
    /// Next frame of the motion clip.
    pub(super) motion: usize,
    pub(super) open: bool,
}

/// splitmix64: a well-mixed 64-bit hash of `x`.
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn setup_err(kind: LoadErrorKind, g: usize, what: impl core::fmt::Display) -> LoadError {
    LoadError::new(kind, format!("member {g}: {what}"))
}

/// The client settings of a load member: one room, one pose stream, no replay
/// window, no pings; envelopes only on receive.
fn session_config(cfg: &LoadConfig, g: usize) -> SessionConfig {
    SessionConfig {
        token: cfg.token.clone(),
        client: "poselink-loadgen".into(),
        max_rooms: 1,
        max_persons: 1,
        heartbeat_us: NEVER,
        connect_timeout_us: NEVER,
        join_timeout_us: NEVER,
        audio_window_us: 0,
        receive: Receive::Headers,
        tx_capacity: TX,
        rx_capacity: RX,
        seed: mix(cfg.seed ^ (g as u64) << 8),
        ..SessionConfig::default()
    }
}

/// Connects member `g`: upgrade, hello, welcome, join, snapshot.
pub(super) fn open_member(
    cfg: &LoadConfig,
    clock: &MonotonicClock,
    addr: SocketAddr,
    g: usize,
    motion_len: usize,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<Member, LoadError> {
    let room_name = format!("{}{}", cfg.room_prefix, g / cfg.members);
    let now = clock.now_us();
    let mut session = Box::new(Session::new(session_config(cfg, g), now));
    session.handle_timeout(now);
    debug_assert_eq!(session.poll_transport(), Some(Transport::Connect));
    let s = StdStream::connect_timeout(&addr, SETUP_TIMEOUT).map_err(|e| {
        setup_err(
            LoadErrorKind::Connect,
            g,
            format_args!("cannot connect to the hub at {addr}: {e}"),
        )
    })?;
    let io = |e: io::Error| setup_err(LoadErrorKind::Io, g, e);
    s.set_nodelay(true).map_err(io)?;
    s.set_read_timeout(Some(SETUP_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(SETUP_TIMEOUT)).map_err(io)?;
    let s = match tls {
        None => Stream::Plain(s),
        Some(cfg) => {
            let link = TlsLink::client(cfg.clone(), &addr.ip().to_string())
                .map_err(|e| setup_err(LoadErrorKind::Config, g, e))?;
            Stream::tls(s, link)
        }
    };
    let (ws, _) = tungstenite::client(format!("ws://{addr}/"), s).map_err(|e| {
        setup_err(
            LoadErrorKind::Handshake,
            g,
            format_args!("the WebSocket upgrade with {addr} failed: {e}"),
        )
    })?;
    // The hub says nothing between its 101 and our hello: nothing is buffered.
    let mut s = ws.into_inner();
    session.handle_connected(now);
    let room = session
        .join(now, &room_name, Role::Member)
        .map_err(|e| setup_err(LoadErrorKind::Config, g, e))?;
    settle(&mut s, &mut session, clock, g)?;
    let (s, link) = s.into_parts();
    s.set_nonblocking(true).map_err(io)?;
    Ok(Member {
        stream: Stream::from_parts(TcpStream::from_std(s), link),
        session,
        global: g,
        room,
        pose_seq: 0,
        audio_seq: 0,
        motion: (mix(g as u64) % motion_len.max(1) as u64) as usize,
        open: true,
    })
}

/// Writes what the session queued and reads its answers until the room is
/// joined; the hub's refusal, a close or a timeout is the error.
fn settle(
    s: &mut Stream<StdStream>,
    session: &mut Session,
    clock: &MonotonicClock,
    g: usize,
) -> Result<(), LoadError> {
    loop {
        let awaited = if session.is_connected() {
            ("room_snapshot", "join")
        } else {
            ("welcome", "hello")
        };
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::RoomJoined { .. } => return Ok(()),
                Event::HubError { code, reason } | Event::JoinRefused { code, reason, .. } => {
                    return Err(setup_err(
                        LoadErrorKind::Refused,
                        g,
                        format_args!(
                            "the hub refused the {}: {reason} ({})",
                            awaited.1,
                            code.name()
                        ),
                    ));
                }
                Event::Disconnected { .. } | Event::Reconnecting { .. } => {
                    return Err(setup_err(
                        LoadErrorKind::Handshake,
                        g,
                        format_args!(
                            "the hub closed the connection while {} was awaited",
                            awaited.0
                        ),
                    ));
                }
                _ => {}
            }
        }
        // What answering the events queued (the join after the welcome).
        let out = session.poll_transmit();
        if !out.is_empty() {
            let n = out.len();
            s.write_all(out)
                .map_err(|e| setup_err(LoadErrorKind::Io, g, e))?;
            session.handle_written(n);
        }
        let buf = session.receive_buffer();
        match s.read(buf) {
            Ok(0) => {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    format_args!(
                        "the hub closed the connection while {} was awaited",
                        awaited.0
                    ),
                ));
            }
            Ok(n) => session.handle_received(clock.now_us(), n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(setup_err(
                    LoadErrorKind::Handshake,
                    g,
                    format_args!(
                        "no {} from the hub within {} s",
                        awaited.0,
                        SETUP_TIMEOUT.as_secs()
                    ),
                ));
            }
            Err(e) => return Err(setup_err(LoadErrorKind::Io, g, e)),
        }
    }
}
