//! The hub's sans-IO core: every protocol decision of the relay, and no IO. It
//! owns the connections' receive buffers and framing, the sessions (hello,
//! tokens, resume), the rooms, the relay queues over a shared block pool, the
//! keyframe cache, heartbeats and limits, and it never touches a socket, a
//! thread, the OS clock or `/proc`. It has quinn-proto's shape: inputs are
//! `handle_*` calls, each carrying `now` (monotonic microseconds); outputs are
//! read with `poll_*` — the bytes to write to a connection
//! ([`poll_transmit`](Core::poll_transmit), lent for one vectored write), which
//! connections have new output ([`poll_output`](Core::poll_output)), what the
//! driver must do to a transport ([`poll_event`](Core::poll_event)) and the next
//! deadline ([`poll_timeout`](Core::poll_timeout)).
//!
//! Two drivers run it: the hub's `mio` loop (sockets, the HTTP upgrade and pages,
//! timers, signals) and the simulations of the test tier, which run it in memory
//! with a clock they advance by hand. A later transport (TLS) or link (a cluster
//! bus) plugs in at the driver's edge: it feeds plaintext bytes in and writes the
//! lent output out.
//!
//! Where each concern lives:
//!
//! - `receive` — receive buffers lent to the driver; WebSocket frames parsed,
//!   unmasked and assembled in place.
//! - `dispatch` — what arrived: WebSocket control frames, flood limits, message
//!   checks, and routing to the concerns below.
//! - `sessions` — the hello: tokens, member ids, resuming; the end of a session.
//! - `rooms` — join, leave, roles, kick, close room; snapshots and member events.
//! - `relay` — pose and audio: checks, fan-out to bounded queues, the drop
//!   policy, the keyframe cache and keyframe requests, audio duplicates.
//! - `output` — control messages, broadcasts, errors, closes, and the transmit
//!   side the driver reads.
//! - `housekeeping` — the timers: handshake, heartbeats, stuck receivers, audio
//!   acknowledgements, room expiry; system samples; shutdown.
//! - `json` — JSON mode: translation at the edges.
//! - `link`, `arena`, `pool` — per-connection byte state and the storage under it.
//!
//! Choices, and why:
//!
//! - The core lends its receive buffer ([`recv_buffer`](Core::recv_buffer), then
//!   [`handle_received`](Core::handle_received)) rather than taking bytes: the
//!   framing state (half a frame, a message assembled across fragments) lives
//!   with the buffer, so frames are unmasked and fragments joined in place, with
//!   no copy, and no driver can break that invariant. A TLS layer decrypts into
//!   the same buffer.
//! - Output is lent as `IoSlice`s over the control FIFO and the shared pool
//!   blocks: one `writev` per connection per round, no copy into a send buffer.
//! - Write interest is the driver's: only it sees the socket refuse bytes. The
//!   core needs only the progress [`handle_written`](Core::handle_written)
//!   reports (a receiver with output waiting and no progress for
//!   `stuck_timeout_ms` is closed).
//! - Session state (`sessions`) lives apart from a connection's byte state
//!   (`link`); the receive side and the parse space live apart from the rest
//!   (`Inner`), so that a message is handled in place while the rest of the core
//!   is borrowed mutably.
//! - Wall-clock time, for token expiry only, is the Unix time given to
//!   [`Core::new`] (and corrected by [`handle_wall_clock`](Core::handle_wall_clock))
//!   plus the monotonic time since, both in microseconds so that an expiry is
//!   seen within a microsecond of the second it names; a simulation sets it like
//!   any other input.
//! - The driver answers HTTP (`/metrics`, `/healthz`, `/readyz`, `/report`, `/rooms`, the
//!   viewer) from what the core shows ([`stats`](Core::stats),
//!   [`gauges`](Core::gauges), [`rooms`](Core::rooms)); the core only sees
//!   connections that completed the WebSocket upgrade.

mod arena;
pub mod cluster;
mod dispatch;
mod housekeeping;
mod json;
mod link;
mod memory;
mod output;
mod pool;
mod receive;
mod relay;
mod rooms;
mod sessions;

pub use crate::room::{ConnId, RoomHandle};
pub use cluster::wire::{Class as ClusterClass, class as cluster_class};
pub use cluster::{ClusterOut, ClusterStats, ClusterTo, subject as cluster_subject};
pub use json::SUBPROTOCOL;
pub(crate) use json::offers_json;
pub use pool::{BLOCK, MAX_MEDIA};

use core::fmt::Write as _;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::net::SocketAddr;

use poselink_hal::Snapshot;

use crate::monitor::PerformanceMonitor;
use crate::proto::{self, ErrorCode, LeaveReason, MAX_REASON_LEN};
use crate::room::{RoomConfig, RoomRegistry};
use crate::token::TokenKey;

use super::config::{ConfigError, HubConfig};
use super::log_limit::{LogKind, LogLimiter};
use super::metrics::{DropReason, Fault, Gauges, HubStats};
use arena::Arena;
use json::JsonEdge;
use link::{Link, Phase};
pub(crate) use memory::{json_bytes, table_bytes};
use pool::Pool;
use receive::{Flow, Item, Receive};
use sessions::{Resumable, Session};

/// Housekeeping (timeouts, heartbeats, acknowledgements, room expiry) period, µs.
const TICK_US: u64 = 20_000;
/// How long a closing connection may take to read our last words, µs.
pub(crate) const LINGER_US: u64 = 1_000_000;
/// What the driver reads from a connection over its rate limits before it
/// waits for its next tick ([`Core::read_budget`]), bytes.
pub const OVER_RATE_READ: usize = 4096;
/// Application close codes: 4000 + the protocol error code.
const APP_CLOSE_BASE: u16 = 4000;

/// What the driver must do to a connection's transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Everything for the connection is written, the last of it a close frame:
    /// shut the transport's write half and keep reading (the core discards what
    /// arrives) until the peer closes — the end of the close handshake. Then
    /// report it with [`Core::handle_closed`].
    Shutdown(ConnId),
    /// The core is done with the connection and its id is free again: close the
    /// transport now. Drain events after every input: a later
    /// [`Core::handle_open`] may hand the same id out again.
    Close(ConnId),
}

impl Event {
    /// The connection it is about.
    pub fn conn(self) -> ConnId {
        match self {
            Event::Shutdown(c) | Event::Close(c) => c,
        }
    }
}

/// Why [`Core::handle_open`] refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Every connection slot is taken.
    Full,
}

impl core::fmt::Display for OpenError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OpenError::Full => f.write_str(
                "the hub holds its maximum number of connections; raise max_connections or try again later",
            ),
        }
    }
}

impl core::error::Error for OpenError {}

/// How a connection's transport ended, for [`Core::handle_closed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The peer closed its side (end of stream).
    Peer,
    /// Reading failed (a reset, for example).
    ReadFailed,
    /// Writing failed.
    WriteFailed,
}

/// A room as `GET /rooms` lists it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomInfo<'a> {
    /// The room's handle.
    pub handle: RoomHandle,
    /// Its name.
    pub name: &'a str,
    /// Members now.
    pub members: usize,
    /// Pose frames per second published into it, over the last system sample
    /// period.
    pub fps: f64,
    /// Media dropped in it since it was created.
    pub drops: u64,
}

/// The hub's sans-IO core: sessions, rooms, relay queues, keyframe cache,
/// heartbeats and limits, driven by `handle_*` inputs and read through `poll_*`
/// outputs (the [module documentation](self) has the whole picture). A driver
/// calls, in a loop: the inputs as they happen ([`handle_open`](Self::handle_open),
/// [`recv_buffer`](Self::recv_buffer) and [`handle_received`](Self::handle_received),
/// [`handle_closed`](Self::handle_closed), [`handle_timeout`](Self::handle_timeout)
/// at [`poll_timeout`](Self::poll_timeout)), draining
/// [`poll_event`](Self::poll_event) after each; then, once per round, every
/// connection [`poll_output`](Self::poll_output) names, written with
/// [`poll_transmit`](Self::poll_transmit) and
/// [`handle_written`](Self::handle_written).
///
/// ```
/// use std::io::IoSlice;
/// use poselink::hub::HubConfig;
/// use poselink::hub::core::Core;
/// use poselink::proto::{encode_control, Header, Hello, Kind, Message, Packet};
/// use poselink::ws::{mask_payload, write_client_header, FrameKind};
///
/// let config = HubConfig::local_dev(); // anonymous access: no token needed
/// let mut core = Core::new(&config, None, 0, 1_700_000_000_000_000).unwrap();
/// // The driver did the HTTP upgrade of a connection from this peer.
/// let conn = core.handle_open(1_000, "127.0.0.1:50000".parse().unwrap(), false).unwrap();
///
/// // The client's hello, as one masked binary frame, lands in the receive buffer.
/// let hello = Message::Hello(Hello { minor: 0, token: "", resume: 0, client: "doc", stream: 0 });
/// let mut msg = [0u8; 256];
/// let len = encode_control(&Header::new(Kind::Hello, 0, 0, 1, 0), &hello, &mut msg).unwrap();
/// let mask = [1, 2, 3, 4];
/// let buf = core.recv_buffer(conn);
/// let hl = write_client_header(buf, FrameKind::Binary, true, len, mask).unwrap();
/// buf[hl..hl + len].copy_from_slice(&msg[..len]);
/// mask_payload(&mut buf[hl..hl + len], mask);
/// let more = core.handle_received(2_000, conn, hl + len);
/// assert!(!more, "no receiver's queue filled: nothing held back");
///
/// // The welcome waits for that connection: lent for one vectored write.
/// assert_eq!(core.poll_output(), Some(conn));
/// let out: Vec<u8> = {
///     let mut slices = [IoSlice::new(&[]); 8];
///     let n = core.poll_transmit(conn, &mut slices);
///     slices[..n].iter().flat_map(|s| s.iter().copied()).collect()
/// };
/// let welcome = Packet::new_checked(&out[2..]).unwrap(); // after a 2-byte frame header
/// assert_eq!(welcome.header().kind, Kind::Welcome);
/// // The socket took it all: nothing more to send.
/// core.handle_written(3_000, conn, out.len());
/// assert_eq!(core.poll_transmit(conn, &mut [IoSlice::new(&[]); 8]), 0);
/// ```
pub struct Core {
    /// Every connection's receive buffer and framing state.
    rx: Receive,
    /// Space for reading received messages.
    space: Space,
    /// Everything else.
    inner: Inner,
}

impl core::fmt::Debug for Core {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Core")
            .field("connections", &self.inner.open)
            .field("sessions", &self.inner.sessions_open)
            .field("rooms", &self.inner.rooms.room_count())
            .finish_non_exhaustive()
    }
}

/// Space for reading received messages, kept apart from [`Inner`] so that a
/// parsed message, which borrows it, can be handled with the rest of the core
/// borrowed mutably.
struct Space {
    /// Decompression space for `Message::parse`.
    parse: Box<[u8]>,
    /// JSON mode: a text message translated to its binary form.
    json_in: Vec<u8>,
}

/// The core's state but the receive side (smoltcp's `InterfaceInner`): its
/// methods are spread over the files of this module, one concern each.
struct Inner {
    cfg: HubConfig,
    /// The time of the input being handled.
    now: u64,
    /// The Unix time (µs) at monotonic time `wall_at_us`.
    wall_us: u64,
    wall_at_us: u64,
    /// Per connection: its byte side and lifecycle.
    links: Box<[Link]>,
    /// Per connection: its session.
    sessions: Box<[Session]>,
    /// Every connection's control FIFO, `control_buffer` bytes each.
    ctrl: Arena,
    free: Vec<u32>,
    open: usize,
    sessions_open: usize,
    /// Connections with output added since the driver last asked, in order; the
    /// driver has seen those before `output_at`.
    output: Vec<u32>,
    output_at: usize,
    /// A receiver's media queue filled while a message was handled: the
    /// sender's remaining messages wait until the driver has written output
    /// ([`Core::handle_received`] returns `true`).
    output_due: bool,
    events: VecDeque<Event>,
    pool: Pool,
    rooms: RoomRegistry,
    key: Option<TokenKey>,
    stats: HubStats,
    /// Member id → connection index + 1 (0: unused).
    member_conn: Box<[u32]>,
    next_member: u16,
    /// Encoding space for the hub's control messages.
    out: Box<[u8]>,
    /// Keyframe requests owed: (publisher, room, person).
    keyframe_wanted: Vec<(ConnId, RoomHandle, u32)>,
    session_counter: u64,
    /// Ended sessions that may be resumed within the room grace period.
    resumable: Vec<Resumable>,
    json: JsonEdge,
    /// Per room handle (index; 0 unused): counters for `GET /rooms`.
    room_counts: Vec<RoomCounts>,
    last_sample_us: u64,
    next_tick: u64,
    /// The warnings about peers, each kind a few lines per window.
    log_limit: LogLimiter,
    /// The cluster link, when the hub is one of several.
    cluster: Option<Box<cluster::Cluster>>,
}

/// A room's counters for `GET /rooms`.
#[derive(Clone, Copy, Debug, Default)]
struct RoomCounts {
    poses: u64,
    drops: u64,
    /// `poses` at the last sample, and the rate since the one before.
    poses_at_sample: u64,
    fps: f64,
}

/// A reason sentence built without allocating.
type Reason = heapless::String<MAX_REASON_LEN>;

fn reason(args: core::fmt::Arguments<'_>) -> Reason {
    let mut s = Reason::new();
    // Overlong text is cut, which `write_fmt` reports as an error: keep what fit.
    let _ = s.write_fmt(args);
    s
}

impl Core {
    /// Allocates every table for `config` (which [`HubConfig::validate`] must
    /// accept). `key` checks the hello's tokens; without one, only a `dev`
    /// configuration is accepted. `now` is the monotonic time, µs; `unix_us`
    /// the Unix time at that moment, µs (for token expiry).
    pub fn new(
        config: &HubConfig,
        key: Option<TokenKey>,
        now: u64,
        unix_us: u64,
    ) -> Result<Core, ConfigError> {
        config.validate()?;
        if key.is_none() && !config.dev {
            return Err(ConfigError(
                "no token key: give the core the key for the configured secret, or set dev for anonymous local trials".into(),
            ));
        }
        let cfg = config.clone();
        let n = cfg.max_connections;
        // Every live block is held by a bounded queue or a keyframe slot, plus the
        // one being fanned out: the pool cannot run dry.
        // Remote publishers' cached keyframes hold blocks too.
        let remote_keyframes = if cfg.cluster.is_some() {
            cfg.max_remote_members * cfg.keyframe_slots
        } else {
            0
        };
        let blocks = n * (cfg.queue_depth + cfg.keyframe_slots) + remote_keyframes + 1;
        let rooms = RoomRegistry::new(RoomConfig {
            max_rooms: cfg.max_rooms,
            max_members: cfg.max_members,
            grace_us: cfg.room_grace_ms * 1000,
            unshared_grace_us: cfg.unshared_room_grace_ms.min(cfg.room_grace_ms) * 1000,
        });
        let resync_words = n.div_ceil(64);
        let inner = Inner {
            links: (0..n).map(|_| Link::new(cfg.queue_depth)).collect(),
            sessions: (0..n).map(|_| Session::new(resync_words, &cfg)).collect(),
            ctrl: Arena::new(n, cfg.control_buffer),
            free: (0..n as u32).rev().collect(),
            open: 0,
            sessions_open: 0,
            output: Vec::with_capacity(2 * n),
            output_at: 0,
            output_due: false,
            events: VecDeque::with_capacity(2 * n + 16),
            pool: Pool::new(blocks),
            rooms,
            key,
            stats: HubStats {
                monitor: PerformanceMonitor::new(cfg.monitor_config()),
                ..HubStats::default()
            },
            member_conn: vec![0u32; 65_536].into_boxed_slice(),
            next_member: 0,
            out: vec![0u8; cfg.max_message + 64].into_boxed_slice(),
            keyframe_wanted: Vec::with_capacity(cfg.max_members * 2),
            session_counter: now,
            resumable: (0..n)
                .map(|_| Resumable::new(cfg.max_rooms_per_connection))
                .collect(),
            json: JsonEdge::new(cfg.max_message.max(16 * 1024) + 64),
            room_counts: vec![RoomCounts::default(); cfg.max_rooms + 1],
            last_sample_us: now,
            next_tick: now,
            log_limit: LogLimiter::new(),
            cluster: cluster::Cluster::new(&cfg, now, unix_us),
            now,
            wall_us: unix_us,
            wall_at_us: now,
            cfg,
        };
        Ok(Core {
            // A whole message, one more frame header, and a control frame that may
            // arrive between fragments.
            rx: Receive::new(n, inner.cfg.max_message),
            space: Space {
                parse: vec![0u8; inner.cfg.max_message.max(16 * 1024) + 64].into_boxed_slice(),
                json_in: Vec::new(),
            },
            inner,
        })
    }

    /// The configuration the core runs with.
    pub fn config(&self) -> &HubConfig {
        &self.inner.cfg
    }

    /// A connection completed the WebSocket upgrade (`json`: it chose the
    /// `poselink.json` subprotocol); the core now expects its hello within
    /// `handshake_timeout_ms`. Its id names it in every other call.
    pub fn handle_open(
        &mut self,
        now: u64,
        peer: SocketAddr,
        json: bool,
    ) -> Result<ConnId, OpenError> {
        let inner = &mut self.inner;
        inner.now = now;
        let slot = inner.free.pop().ok_or(OpenError::Full)?;
        let i = slot as usize;
        inner.links[i].open(peer, json, now, &inner.cfg);
        inner.sessions[i].reset();
        inner.open += 1;
        self.rx.reset(i);
        log::debug!("connection {i} from {peer}");
        Ok(ConnId::new(slot))
    }

    /// The free part of `conn`'s receive buffer: the driver reads (or decrypts)
    /// into its start, then says how much with
    /// [`handle_received`](Self::handle_received). Empty for an unknown id.
    pub fn recv_buffer(&mut self, conn: ConnId) -> &mut [u8] {
        match self.inner.links.get(conn.index()) {
            Some(l) if l.phase != Phase::Free => self.rx.spare(conn.index()),
            _ => &mut [],
        }
    }

    /// Bytes the driver should read from `conn` in this loop turn before it
    /// turns to the others: `read_budget`; or, while the connection has
    /// messages refused at its rate limits within the flood window,
    /// [`OVER_RATE_READ`] (the hub's driver then reads it again only at its
    /// next 20 ms tick) — a flooder's bytes are left in its socket, where TCP
    /// slows it down, rather than framed and refused here.
    pub fn read_budget(&mut self, now: u64, conn: ConnId) -> usize {
        let budget = self.inner.cfg.read_budget;
        let Some(l) = self.inner.links.get_mut(conn.index()) else {
            return budget;
        };
        if l.phase != Phase::Free && l.refused_msgs.count(now) > 0 {
            OVER_RATE_READ.min(budget)
        } else {
            budget
        }
    }

    /// `n` bytes arrived at the start of what [`recv_buffer`](Self::recv_buffer)
    /// lent. Every whole frame is handled now; a partial one waits for more.
    ///
    /// Returns `true` when it stopped early because a receiver's media queue
    /// filled (`queue_depth`) while relaying: write the output due
    /// ([`poll_output`](Self::poll_output) …) and call again with `n = 0` for
    /// the rest. A burst from one sender (seconds of audio queued through an
    /// outage, sent at once on reconnect) then reaches a receiver whose socket
    /// takes it, instead of pushing that receiver's oldest media out of a
    /// queue nobody has tried to write yet; only a receiver whose socket stays
    /// full loses media (the slow-receiver rule). Each call handles at least
    /// one message, so calling until it returns `false` ends.
    #[must_use = "true: write the output due, then call again with n = 0"]
    pub fn handle_received(&mut self, now: u64, conn: ConnId, n: usize) -> bool {
        let i = conn.index();
        let inner = &mut self.inner;
        inner.now = now;
        inner.output_due = false;
        let Some(link) = inner.links.get_mut(i) else {
            return false;
        };
        match link.phase {
            Phase::Free => return false,
            // Closing: read and discard until the peer closes or the linger ends.
            Phase::Closing => {
                self.rx.discard(i);
                return false;
            }
            Phase::AwaitHello | Phase::Session => {}
        }
        if n > 0 {
            link.last_rx_us = now;
        }
        self.rx.filled(i, n);
        let Core { rx, space, inner } = self;
        let flow = rx.parse(i, |item| {
            match item {
                Item::Control(kind, payload) => inner.on_ws_control(i, kind, payload),
                Item::Message(kind, bytes) => inner.on_ws_message(i, kind, bytes, space),
                Item::Error(e) => inner.ws_fail(i, e),
            }
            if !inner.takes_frames(i) {
                Flow::Stop
            } else if std::mem::take(&mut inner.output_due) {
                Flow::Pause
            } else {
                Flow::Go
            }
        });
        flow == Flow::Pause
    }

    /// The next connection with output added since it was last returned: write
    /// it with [`poll_transmit`](Self::poll_transmit) and
    /// [`handle_written`](Self::handle_written). Asking after every round of
    /// reads, not after every read, keeps it to one write per connection per
    /// round.
    pub fn poll_output(&mut self) -> Option<ConnId> {
        let inner = &mut self.inner;
        while let Some(&i) = inner.output.get(inner.output_at) {
            inner.output_at += 1;
            let link = &mut inner.links[i as usize];
            link.queued_for_output = false;
            if link.phase != Phase::Free {
                return Some(ConnId::new(i));
            }
        }
        inner.output.clear();
        inner.output_at = 0;
        None
    }

    /// Lends what `conn` has to send, oldest first, as slices for one vectored
    /// write (at most `slices.len()` of them); returns how many it filled, 0 when
    /// nothing waits. Report what the write took with
    /// [`handle_written`](Self::handle_written).
    pub fn poll_transmit<'a>(&'a self, conn: ConnId, slices: &mut [IoSlice<'a>]) -> usize {
        let i = conn.index();
        match self.inner.links.get(i) {
            Some(l) if l.phase != Phase::Free => {
                l.transmit(self.inner.ctrl.get(i), &self.inner.pool, slices)
            }
            _ => 0,
        }
    }

    /// The transport took the first `n` bytes of what
    /// [`poll_transmit`](Self::poll_transmit) lent.
    pub fn handle_written(&mut self, now: u64, conn: ConnId, n: usize) {
        self.inner.now = now;
        self.inner.written(conn, n);
    }

    /// `conn`'s transport ended (the peer closed it, or it failed): the session
    /// ends (its rooms hear `member_left`) and the id is free again. The driver
    /// closes the transport itself; no [`Event::Close`] follows.
    pub fn handle_closed(&mut self, now: u64, conn: ConnId, how: Closed) {
        let inner = &mut self.inner;
        inner.now = now;
        let Some(link) = inner.links.get(conn.index()) else {
            return;
        };
        let counted = match how {
            Closed::Peer => false,
            // Once closing, the peer's reset is its answer, not a fault.
            Closed::ReadFailed => link.phase != Phase::Closing,
            Closed::WriteFailed => true,
        };
        if link.phase == Phase::Free {
            return;
        }
        if counted {
            inner.stats.count_fault(Fault::Io);
        }
        log::debug!("connection {conn} ({}) closed: {how:?}", link.peer);
        inner.free_conn(conn.index(), LeaveReason::Disconnected);
    }

    /// What the driver must do next to a transport, if anything.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.inner.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next (monotonic µs).
    pub fn poll_timeout(&self) -> Option<u64> {
        Some(self.inner.next_tick)
    }

    /// Runs the timers that are due: handshake and hello deadlines, closing
    /// connections' lingers, stuck receivers, heartbeats (pings, and closing
    /// peers silent for 3 intervals), audio acknowledgements, room expiry.
    pub fn handle_timeout(&mut self, now: u64) {
        let inner = &mut self.inner;
        inner.now = now;
        if now >= inner.next_tick {
            inner.housekeeping();
            inner.next_tick = now + TICK_US;
        }
    }

    /// A sample of the process and the board (the driver reads them, once a
    /// second): into the performance monitor, with the queue depth and the
    /// rooms' pose rates; alerts newly raised are logged.
    pub fn handle_system_sample(&mut self, now: u64, sample: &Snapshot) {
        self.inner.now = now;
        self.inner.sample_system(sample);
    }

    /// The Unix time (µs) at monotonic time `now`, for token expiry; the core
    /// counts on from there.
    pub fn handle_wall_clock(&mut self, now: u64, unix_us: u64) {
        let inner = &mut self.inner;
        inner.now = now;
        inner.wall_us = unix_us;
        inner.wall_at_us = now;
    }

    /// A message from the cluster's broker; `sid` is the one given with the
    /// subscription it came through ([`ClusterTo::Subscribe`]), 0 for the
    /// hub's own subject and the one every hub hears. A malformed message is
    /// refused and counted ([`ClusterStats::malformed`]). Returns `true` when a
    /// receiver's media queue filled from below: write the output due before
    /// the next message, as after [`handle_received`](Self::handle_received).
    #[must_use = "true: write the output due before the next message"]
    pub fn handle_cluster(&mut self, now: u64, sid: u16, bytes: &[u8]) -> bool {
        self.inner.now = now;
        self.inner.output_due = false;
        self.inner.on_cluster(sid, bytes, &mut self.space.parse);
        std::mem::take(&mut self.inner.output_due)
    }

    /// The broker connection went up or down. Down: the hub relays between
    /// its own members only; up again: it announces its members and asks the
    /// other hubs for theirs.
    pub fn handle_cluster_link(&mut self, now: u64, up: bool) {
        self.inner.now = now;
        self.inner.cluster_link(up);
    }

    /// The next message for the broker, or subscription change, oldest first.
    /// The driver drains this after every round.
    pub fn poll_cluster(&mut self) -> Option<ClusterOut<'_>> {
        self.inner.cluster.as_deref_mut()?.out.pop()
    }

    /// The driver lost a control message for the broker (a full ring): the
    /// core announces its members again at its next tick.
    pub fn handle_cluster_lost_control(&mut self) {
        self.inner.cluster_resync_later();
    }

    /// Whether the broker connection is up (as last told), `None` when the hub
    /// is alone.
    pub fn cluster_up(&self) -> Option<bool> {
        self.inner.cluster.as_deref().map(|c| c.up)
    }

    /// Members of other hubs known here, and hubs heard from.
    pub fn cluster_gauges(&self) -> (usize, usize) {
        self.inner
            .cluster
            .as_deref()
            .map_or((0, 0), |c| (c.remotes.len() - c.free.len(), c.nodes.len()))
    }

    /// The hub is stopping: every connection is told "going away" (an error, then
    /// a close frame). Connections then close as usual; the driver waits for them
    /// as long as it likes and reports the rest with
    /// [`handle_closed`](Self::handle_closed).
    pub fn handle_shutdown(&mut self, now: u64) {
        self.inner.now = now;
        self.inner.shutdown();
    }

    /// Every counter.
    pub fn stats(&self) -> &HubStats {
        &self.inner.stats
    }

    /// Every counter, for the driver to count what happens below the core
    /// (accepted connections, refused HTTP requests, socket errors).
    pub fn stats_mut(&mut self) -> &mut HubStats {
        &mut self.inner.stats
    }

    /// The levels `/metrics` shows; `connections` counts the core's connections
    /// only (the driver adds those still in HTTP).
    pub fn gauges(&self) -> Gauges {
        let inner = &self.inner;
        Gauges {
            connections: inner.open,
            sessions: inner.sessions_open,
            rooms: inner.rooms.room_count(),
            blocks_in_use: inner.pool.in_use(),
            blocks: inner.pool.capacity(),
            queued: inner.queued(),
            memory_ceiling: 0,
            cluster_up: inner.cluster.as_deref().map(|c| c.up),
            remote_members: inner
                .cluster
                .as_deref()
                .map_or(0, |c| c.remotes.len() - c.free.len()),
            cluster_nodes: inner.cluster.as_deref().map_or(0, |c| c.nodes.len()),
        }
    }

    /// Every room, with its member count, pose rate and drops.
    pub fn rooms(&self) -> impl Iterator<Item = RoomInfo<'_>> + '_ {
        let inner = &self.inner;
        inner.rooms.handles().filter_map(|h| {
            let rc = inner.room_counts.get(h.index())?;
            Some(RoomInfo {
                handle: h,
                name: inner.rooms.name(h)?,
                members: inner.rooms.members(h).len(),
                fps: rc.fps,
                drops: rc.drops,
            })
        })
    }

    /// Connections open (upgraded, not yet closed).
    pub fn connections(&self) -> usize {
        self.inner.open
    }

    /// The member id of `conn`'s session, once its hello was accepted.
    pub fn member(&self, conn: ConnId) -> Option<u16> {
        let i = conn.index();
        match self.inner.links.get(i)?.phase {
            Phase::Session => Some(self.inner.sessions[i].member),
            _ => None,
        }
    }
}

impl Inner {
    /// Whether connection `i` still takes frames.
    fn takes_frames(&self, i: usize) -> bool {
        matches!(self.links[i].phase, Phase::AwaitHello | Phase::Session)
    }

    /// The Unix time now, whole seconds (what token expiry is in).
    fn unix_secs(&self) -> u64 {
        (self.wall_us + self.now.saturating_sub(self.wall_at_us)) / 1_000_000
    }

    /// Media messages queued over all receivers.
    fn queued(&self) -> usize {
        self.links.iter().map(|l| l.data.len()).sum()
    }
}

/// The error code and close code for a message that breaks the protocol.
fn bad_message_code(e: proto::Error) -> ErrorCode {
    match e {
        proto::Error::UnknownVersion { .. } => ErrorCode::UNSUPPORTED_VERSION,
        proto::Error::Oversize { .. } => ErrorCode::OVERSIZE,
        _ => ErrorCode::BAD_MESSAGE,
    }
}

/// The close code for a refusal with a protocol error code.
const fn app_close(code: ErrorCode) -> u16 {
    APP_CLOSE_BASE + code.0
}
