//! The hub: what operators run. One thread, one `mio` event loop, every
//! connection in a slot table sized at start-up. A connection goes through the
//! HTTP upgrade (tungstenite's handshake; `GET /metrics` and `/healthz` are
//! answered on the same port), the hello (a JWT, checked once), and then a
//! session in which it joins rooms, publishes and receives. Frames are parsed and
//! unmasked in place in the connection's receive buffer; a published pose or
//! audio message is checked once, copied once into a shared block with its
//! WebSocket header, and the block's index is pushed to every other member's
//! bounded queue. Each iteration reads every ready socket, then writes every
//! connection with output, one `writev` per round, so that a busy room costs a
//! few system calls per receiver per iteration, not one per message.
//!
//! What the hub promises: control messages are never dropped (a receiver that
//! lets its control buffer fill is closed); media for a slow receiver is dropped
//! oldest pose first, then oldest audio, every drop counted, and a receiver that
//! loses a pose gets none of that publisher's deltas (it could not decode them)
//! until a keyframe, which the hub asks the publisher for; a receiver that accepts
//! no bytes for `stuck_timeout_ms` is closed. Nothing one connection sends can
//! stop the loop: every failure is answered with an error message (and a close
//! where continuing is unsafe), a log line and a counter.
//!
//! ```no_run
//! use poselink::hub::{Hub, HubConfig};
//! let hub = Hub::bind(HubConfig::local_dev())?;
//! println!("listening on ws://{}", hub.local_addr());
//! let handle = hub.handle(); // handle.shutdown() from any thread stops it
//! let report = hub.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
mod conn;
mod http;
mod json;
mod metrics;
mod pool;
mod web;

pub use config::{ConfigError, HubConfig};
pub use metrics::{DropReason, Fault, HubStats, LATENCY_BUCKETS_US};
pub use pool::{BLOCK, MAX_MEDIA};

use core::fmt::Write as _;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use poselink_hal::{Clock, LinuxStats, MonotonicClock, SystemStats};

use crate::monitor::PerformanceMonitor;
use crate::proto::PoseDecoder;

use crate::proto::{
    self, Ack, ErrorCode, ErrorMsg, Header, Kind, LeaveReason, MAX_REASON_LEN, MemberInfo,
    MemberJoined, MemberLeft, Message, NeedsKeyframe, PROTOCOL_MINOR, Packet, Pong, PoseCoding,
    RoleChanged, Welcome, encode_control, encode_snapshot,
};
use crate::rate::TokenBucket;
use crate::room::{RoomConfig, RoomError, RoomRegistry};
use crate::token::{TokenError, TokenKey};
use crate::ws::{self, FrameKind, Parsed, close_code};

use conn::{Conn, FlushEnd, KeyframeSlot, Membership, ReadEnd, Sizes, State};
use metrics::Gauges;
use pool::{Meta, Pool};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// Housekeeping (timeouts, heartbeats, acknowledgements, room expiry) period.
const TICK_US: u64 = 20_000;
/// Pose decoders the hub keeps for JSON receivers, at most.
const JSON_DECODERS: usize = 1024;
/// How often the process and board are sampled into the monitor, µs.
const SAMPLE_US: u64 = 1_000_000;
/// Bytes read from one connection before the loop turns to the others.
const READ_BUDGET: usize = 256 * 1024;
/// The longest HTTP request head accepted.
const MAX_HTTP_HEAD: usize = 8 * 1024;
/// How long a closing connection may take to read our last words.
const LINGER_US: u64 = 1_000_000;
/// Keyframe requests to one publisher at most this often.
const KEYFRAME_REQUEST_GAP_US: u64 = 100_000;
/// Application close codes: 4000 + the protocol error code.
const APP_CLOSE_BASE: u16 = 4000;

/// Stops a running hub from any thread.
#[derive(Clone, Debug)]
pub struct HubHandle {
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl HubHandle {
    /// Asks the hub to close every connection with "going away" and return.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
}

/// What a hub did, returned when its loop ends.
#[derive(Clone, Debug, Default)]
pub struct HubReport {
    /// Every counter, as `/metrics` showed them last.
    pub stats: HubStats,
    /// CPU time the hub's thread used, if the platform says.
    pub thread_cpu: Option<Duration>,
}

/// A bound hub, ready to run.
pub struct Hub {
    poll: Poll,
    listener: TcpListener,
    addr: SocketAddr,
    handle: HubHandle,
    core: Core,
}

impl core::fmt::Debug for Hub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hub").field("addr", &self.addr).finish()
    }
}

impl Hub {
    /// Checks the configuration, allocates every table and binds the listener.
    /// A configuration error is `io::ErrorKind::InvalidInput` with the reason.
    pub fn bind(config: HubConfig) -> io::Result<Hub> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let key = load_key(&config)?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        let handle = HubHandle {
            stop: Arc::new(AtomicBool::new(false)),
            waker,
        };
        if config.dev {
            // On loopback only this machine's processes can reach it: say so
            // quietly (the demo runs so); on any other address, loudly.
            let level = if addr.ip().is_loopback() {
                log::Level::Info
            } else {
                log::Level::Warn
            };
            log::log!(
                level,
                "DEV MODE: anonymous access is on; anyone who can reach {addr} may join any room as owner. Never run --dev in production."
            );
        }
        let core = Core::new(config, key, registry);
        Ok(Hub {
            poll,
            listener,
            addr,
            handle,
            core,
        })
    }

    /// The address the hub listens on (the OS-chosen port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops the hub.
    pub fn handle(&self) -> HubHandle {
        self.handle.clone()
    }

    /// Runs the event loop on this thread until [`HubHandle::shutdown`]; then
    /// closes every connection with "going away" (waiting up to a second for the
    /// close frames to leave) and returns what it counted.
    pub fn run(mut self) -> io::Result<HubReport> {
        let mut events = Events::with_capacity(1024);
        log::info!(
            "hub listening on {} (max {} connections, {} rooms)",
            self.addr,
            self.core.cfg.max_connections,
            self.core.cfg.max_rooms
        );
        let mut next_tick = self.core.now();
        loop {
            let now = self.core.now();
            let timeout = if self.core.again.is_empty() {
                Duration::from_micros(next_tick.saturating_sub(now).max(1))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.core.now_us = self.core.now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.core.accept_all(&self.listener),
                    WAKER => {}
                    Token(i) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            // With the peer's FIN already here, read to the end:
                            // a short read would not see it, and no new edge comes.
                            if let Some(c) = self.core.conns.get_mut(i) {
                                c.hup = ev.is_read_closed() || ev.is_error();
                            }
                            self.core.on_readable(i);
                        }
                        if ev.is_writable() {
                            self.core.mark_dirty(i);
                        }
                    }
                }
            }
            self.core.read_again();
            self.core.flush_dirty();
            if self.core.now_us >= next_tick {
                self.core.housekeeping();
                self.core.flush_dirty();
                next_tick = self.core.now_us + TICK_US;
            }
            if self.handle.stop.load(Ordering::Acquire) {
                break;
            }
        }
        self.core.shutdown(&mut self.poll, &mut events);
        let thread_cpu = poselink_hal::clock::thread_cpu_us().map(Duration::from_micros);
        log::info!(
            "hub stopped: {} connections served, {} media messages delivered",
            self.core.stats.accepted,
            self.core.stats.delivered
        );
        Ok(HubReport {
            stats: self.core.stats.clone(),
            thread_cpu,
        })
    }

    /// Binds and runs the hub on a new thread named `poselink-hub`.
    pub fn spawn(
        config: HubConfig,
    ) -> io::Result<(HubHandle, SocketAddr, JoinHandle<io::Result<HubReport>>)> {
        let hub = Hub::bind(config)?;
        let (handle, addr) = (hub.handle(), hub.local_addr());
        let join = std::thread::Builder::new()
            .name("poselink-hub".into())
            .spawn(move || hub.run())?;
        Ok((handle, addr, join))
    }
}

fn load_key(cfg: &HubConfig) -> io::Result<Option<TokenKey>> {
    let secret = match (&cfg.secret, &cfg.secret_file) {
        (Some(s), _) => s.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("cannot read the secret file {path}: {e}"),
                )
            })?
            .trim()
            .to_string(),
        (None, None) => return Ok(None),
    };
    TokenKey::hs256(secret.as_bytes())
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// A reason sentence built without allocating.
type Reason = heapless::String<MAX_REASON_LEN>;

fn reason(args: core::fmt::Arguments<'_>) -> Reason {
    let mut s = Reason::new();
    // Overlong text is cut, which `write_fmt` reports as an error: keep what fit.
    let _ = s.write_fmt(args);
    s
}

/// The loop's state: everything but the poller and the listener.
struct Core {
    cfg: HubConfig,
    clock: MonotonicClock,
    now_us: u64,
    registry: Registry,
    conns: Vec<Conn>,
    /// Every slot's receive buffer, `rx_size` bytes each (one allocation: pages
    /// of slots never used are never touched).
    rx_arena: Box<[u8]>,
    rx_size: usize,
    /// Every slot's control FIFO, `ctrl_size` bytes each.
    ctrl_arena: Box<[u8]>,
    ctrl_size: usize,
    free_slots: Vec<u32>,
    open: usize,
    sessions: usize,
    dirty: Vec<u32>,
    again: Vec<u32>,
    again_next: Vec<u32>,
    pool: Pool,
    rooms: RoomRegistry,
    key: Option<TokenKey>,
    stats: HubStats,
    /// Member id → slot + 1 (0: unused).
    member_slot: Box<[u32]>,
    next_member: u16,
    /// Decompression space for received messages.
    scratch: Box<[u8]>,
    /// Encoding space for the hub's control messages.
    out: Box<[u8]>,
    /// Keyframe requests owed after a fan-out: (publisher slot, room, person).
    keyframe_wanted: Vec<(u32, u16, u32)>,
    session_counter: u64,
    /// Ended sessions that may be resumed within the room grace period.
    resumable: Vec<Resumable>,
    /// JSON mode: translation space for inbound messages.
    json_in: Vec<u8>,
    /// JSON mode: the message being fanned out, as JSON (translated once for
    /// every JSON receiver; `None` inside: it could not be decoded).
    json_media: Option<(u32, Option<String>)>,
    /// JSON mode: whether the block being enqueued is live (fanned out now) or a
    /// cached keyframe served to one receiver.
    json_live: bool,
    /// JSON mode: pose decoders per (publisher member, room, person), kept while
    /// JSON receivers get that stream.
    json_decoders: Vec<((u16, u16, u32), PoseDecoder)>,
    /// Per room handle (index; 0 unused): pose frames published and media dropped,
    /// and the pose rate measured at the last sample, for `GET /rooms`.
    room_counts: Vec<RoomCounts>,
    /// The process's CPU, memory and SoC temperature, sampled once a second
    /// into the monitor (allocation-free).
    system: LinuxStats,
    next_sample_us: u64,
    last_sample_us: u64,
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

/// What a resumed session gets back: its member id, and per room the last audio
/// `seq` relayed from it, so that chunks it replays after reconnecting are
/// recognised as duplicates.
struct Resumable {
    id: u64,
    user: heapless::String<{ proto::MAX_NAME_LEN }>,
    member: u16,
    until_us: u64,
    audio: Vec<(u16, u32)>,
}

impl Core {
    fn new(cfg: HubConfig, key: Option<TokenKey>, registry: Registry) -> Core {
        // A whole message, one more frame header, and a control frame that may
        // arrive between fragments.
        let rx_size = cfg.max_message + 14 + 14 + 125;
        let ctrl_size = cfg.control_buffer;
        let sizes = Sizes {
            queue_depth: cfg.queue_depth,
            resync_words: cfg.max_connections.div_ceil(64),
            keyframe_slots: cfg.keyframe_slots,
            rooms: cfg.max_rooms_per_connection,
            max_message: cfg.max_message,
        };
        let n = cfg.max_connections;
        // Every live block is held by a bounded queue or a keyframe slot, plus the
        // one being fanned out: the pool cannot run dry.
        let blocks = n * (cfg.queue_depth + cfg.keyframe_slots) + 1;
        let rooms = RoomRegistry::new(RoomConfig {
            max_rooms: cfg.max_rooms,
            max_members: cfg.max_members,
            grace_us: cfg.room_grace_ms * 1000,
        });
        let clock = MonotonicClock::new();
        let now_us = clock.now_us();
        Core {
            conns: (0..n).map(|_| Conn::new(&sizes)).collect(),
            rx_arena: vec![0u8; n * rx_size].into_boxed_slice(),
            rx_size,
            ctrl_arena: vec![0u8; n * ctrl_size].into_boxed_slice(),
            ctrl_size,
            free_slots: (0..n as u32).rev().collect(),
            open: 0,
            sessions: 0,
            dirty: Vec::with_capacity(n),
            again: Vec::with_capacity(n),
            again_next: Vec::with_capacity(n),
            pool: Pool::new(blocks),
            rooms,
            key,
            stats: HubStats {
                monitor: PerformanceMonitor::new(cfg.monitor_config()),
                ..HubStats::default()
            },
            system: LinuxStats::new(),
            json_in: Vec::new(),
            json_media: None,
            json_live: false,
            json_decoders: Vec::new(),
            room_counts: vec![RoomCounts::default(); cfg.max_rooms + 1],
            next_sample_us: now_us,
            last_sample_us: now_us,
            member_slot: vec![0u32; 65_536].into_boxed_slice(),
            next_member: 0,
            scratch: vec![0u8; cfg.max_message.max(16 * 1024) + 64].into_boxed_slice(),
            out: vec![0u8; cfg.max_message + 64].into_boxed_slice(),
            keyframe_wanted: Vec::with_capacity(cfg.max_members * 2),
            session_counter: now_us,
            resumable: (0..n)
                .map(|_| Resumable {
                    id: 0,
                    user: heapless::String::new(),
                    member: 0,
                    until_us: 0,
                    audio: Vec::with_capacity(cfg.max_rooms_per_connection),
                })
                .collect(),
            cfg,
            clock,
            now_us,
            registry,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_us()
    }

    /// Appends a whole server frame to `i`'s control FIFO; `false` if it is full.
    fn push_ctrl_frame(&mut self, i: usize, kind: FrameKind, payload: &[u8]) -> bool {
        let sz = self.ctrl_size;
        let ctrl = &mut self.ctrl_arena[i * sz..(i + 1) * sz];
        self.conns[i].push_ctrl_frame(ctrl, kind, payload)
    }

    /// Appends raw bytes (an HTTP answer) to `i`'s control FIFO.
    fn push_ctrl_raw(&mut self, i: usize, parts: &[&[u8]]) -> bool {
        let sz = self.ctrl_size;
        let ctrl = &mut self.ctrl_arena[i * sz..(i + 1) * sz];
        self.conns[i].push_ctrl_raw(ctrl, parts)
    }

    /// Reads from `i`'s socket into its receive buffer.
    fn read_into(&mut self, i: usize, budget: usize) -> io::Result<(usize, ReadEnd)> {
        let sz = self.rx_size;
        let rx = &mut self.rx_arena[i * sz..(i + 1) * sz];
        self.conns[i].read_some(rx, budget)
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            connections: self.open,
            sessions: self.sessions,
            rooms: self.rooms.room_count(),
            blocks_in_use: self.pool.in_use(),
            blocks: self.pool.capacity(),
            queued: self.conns.iter().map(|c| c.data.len()).sum(),
        }
    }

    // ---- accepting and reading -------------------------------------------------

    fn accept_all(&mut self, listener: &TcpListener) {
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    let Some(slot) = self.free_slots.pop() else {
                        self.stats.count_fault(Fault::HubFull);
                        log::warn!(
                            "refused {peer}: all {} connection slots are in use",
                            self.cfg.max_connections
                        );
                        let _ = io::Write::write(
                            &mut stream,
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 67\r\nConnection: close\r\n\r\nThe hub holds its maximum number of connections; try again later.\r\n",
                        );
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let i = slot as usize;
                    if let Err(e) =
                        self.registry
                            .register(&mut stream, Token(i), Interest::READABLE)
                    {
                        log::warn!("cannot register {peer}: {e}");
                        self.free_slots.push(slot);
                        continue;
                    }
                    self.conns[i].open(stream, peer, self.now_us);
                    self.open += 1;
                    self.stats.accepted += 1;
                    log::debug!("connection {i} from {peer}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog for the next
                    // readiness event rather than spinning.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads connection `i` again in the next iteration (its budget ran out).
    fn push_again(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if !c.in_again {
            c.in_again = true;
            self.again.push(i as u32);
        }
    }

    fn read_again(&mut self) {
        std::mem::swap(&mut self.again, &mut self.again_next);
        self.again.clear();
        for k in 0..self.again_next.len() {
            let i = self.again_next[k] as usize;
            self.conns[i].in_again = false;
            self.on_readable(i);
        }
        self.again_next.clear();
    }

    fn on_readable(&mut self, i: usize) {
        let Some(c) = self.conns.get_mut(i) else {
            return;
        };
        match c.state {
            State::Free => {}
            State::Closing => {
                // Read and discard until the peer closes or the linger ends.
                loop {
                    self.conns[i].rx_len = 0;
                    match self.read_into(i, READ_BUDGET) {
                        Ok((_, ReadEnd::Closed)) | Err(_) => {
                            self.teardown(i, LeaveReason::Disconnected);
                            return;
                        }
                        Ok((_, ReadEnd::Drained)) => return,
                        Ok((_, ReadEnd::Budget)) => {
                            self.push_again(i);
                            return;
                        }
                        Ok((_, ReadEnd::BufferFull)) => {}
                    }
                }
            }
            State::Http => self.read_http(i),
            State::AwaitHello | State::Session => self.read_frames(i),
        }
    }

    fn read_http(&mut self, i: usize) {
        let end = match self.read_into(i, MAX_HTTP_HEAD) {
            Ok((_, end)) => end,
            Err(_) => {
                self.stats.count_fault(Fault::Io);
                return self.teardown(i, LeaveReason::Disconnected);
            }
        };
        let c = &mut self.conns[i];
        c.last_rx_us = self.now_us;
        let rx = &self.rx_arena[i * self.rx_size..(i + 1) * self.rx_size];
        let head_end = rx[..c.rx_len].windows(4).position(|w| w == b"\r\n\r\n");
        // Refuse what cannot become an HTTP request at once (a TLS ClientHello,
        // binary garbage) instead of waiting for a blank line that never comes.
        let invalid = head_end.is_none() && c.rx_len > 0 && http::invalid_start(&rx[..c.rx_len]);
        match head_end {
            Some(p) => self.on_http_request(i, p + 4),
            None if invalid => {
                log::warn!("connection {i} ({}): not an HTTP request", c.peer);
                self.http_refuse(
                    i,
                    400,
                    "Bad Request",
                    "This is a poselink hub and these bytes are not HTTP (a TLS client? the hub speaks plain ws://; put TLS in a proxy in front). Connect with a WebSocket client (RFC 6455).\n",
                )
            }
            None if c.rx_len >= MAX_HTTP_HEAD => self.http_refuse(
                i,
                431,
                "Request Header Fields Too Large",
                "The request head is over 8 KiB.",
            ),
            None if end == ReadEnd::Closed => self.teardown(i, LeaveReason::Disconnected),
            None if end == ReadEnd::Budget => self.push_again(i),
            None => {}
        }
    }

    /// Reads, then parses every whole frame in place.
    fn read_frames(&mut self, i: usize) {
        let (got, end) = match self.read_into(i, READ_BUDGET) {
            Ok(r) => r,
            Err(e) => {
                log::debug!("connection {i}: read error {e}");
                self.stats.count_fault(Fault::Io);
                return self.teardown(i, LeaveReason::Disconnected);
            }
        };
        if got > 0 {
            self.conns[i].last_rx_us = self.now_us;
        }
        self.parse_frames(i);
        let c = &self.conns[i];
        if !matches!(c.state, State::AwaitHello | State::Session) {
            return;
        }
        match end {
            ReadEnd::Closed => {
                log::debug!("connection {i} ({}) closed by the peer", c.peer);
                self.teardown(i, LeaveReason::Disconnected);
            }
            ReadEnd::Budget | ReadEnd::BufferFull => self.push_again(i),
            ReadEnd::Drained => {}
        }
    }

    fn parse_frames(&mut self, i: usize) {
        let mut arena = std::mem::take(&mut self.rx_arena);
        let rx = &mut arena[i * self.rx_size..(i + 1) * self.rx_size];
        let (mut rx_len, mut scan, mut asm_len) = {
            let c = &self.conns[i];
            (c.rx_len, c.scan, c.asm_len)
        };
        let max = self.cfg.max_message;
        loop {
            if !matches!(self.conns[i].state, State::AwaitHello | State::Session) {
                break;
            }
            let frame = match ws::parse_frame(&mut rx[scan..rx_len], max) {
                Ok(Parsed::Frame(f)) => f,
                Ok(Parsed::Need(n)) => {
                    // Parsed frames are moved out below, so the frame has the
                    // buffer less the message assembled so far; only a message
                    // over the limit can outgrow that.
                    if asm_len + n > rx.len() {
                        let e = ws::WsError::TooLarge {
                            len: (asm_len + n) as u64,
                            max,
                        };
                        self.ws_fail(i, e);
                    }
                    break;
                }
                Err(e) => {
                    self.ws_fail(i, e);
                    break;
                }
            };
            let (h, p) = (scan + frame.header_len, scan + frame.len());
            if frame.kind.is_control() {
                self.on_ws_control(i, frame.kind, &rx[h..p]);
                if asm_len > 0 {
                    // Remove it from between the fragments.
                    rx.copy_within(p..rx_len, scan);
                    rx_len -= frame.len();
                } else {
                    scan = p;
                }
                continue;
            }
            let done =
                match self.conns[i]
                    .assembler
                    .data_frame(frame.kind, frame.fin, frame.payload_len)
                {
                    Ok(d) => d,
                    Err(e) => {
                        self.ws_fail(i, e);
                        break;
                    }
                };
            if frame.fin && asm_len == 0 {
                if let Some((kind, _)) = done {
                    self.on_ws_message(i, kind, &mut rx[h..p]);
                }
                scan = p;
                continue;
            }
            // A fragment: assemble the message at the front of the buffer. (The
            // frame is already unmasked: move it, never parse it again.)
            if asm_len == 0 && scan > 0 {
                rx.copy_within(scan..rx_len, 0);
                rx_len -= scan;
                scan = 0;
            }
            rx.copy_within(scan + frame.header_len..rx_len, scan);
            rx_len -= frame.header_len;
            asm_len += frame.payload_len;
            scan = asm_len;
            if let Some((kind, total)) = done {
                self.on_ws_message(i, kind, &mut rx[..total]);
                rx.copy_within(total..rx_len, 0);
                rx_len -= total;
                asm_len = 0;
                scan = 0;
            }
        }
        if asm_len == 0 && scan > 0 {
            rx.copy_within(scan..rx_len, 0);
            rx_len -= scan;
            scan = 0;
        }
        self.rx_arena = arena;
        let c = &mut self.conns[i];
        if matches!(c.state, State::AwaitHello | State::Session) {
            c.rx_len = rx_len;
            c.scan = scan;
            c.asm_len = asm_len;
        } else {
            c.rx_len = 0;
            c.scan = 0;
            c.asm_len = 0;
        }
    }

    fn ws_fail(&mut self, i: usize, e: ws::WsError) {
        self.stats.count_fault(Fault::WebSocket);
        log::warn!("connection {i} ({}): {e}; closing", self.conns[i].peer);
        let (code, what) = match e {
            ws::WsError::TooLarge { .. } => (ErrorCode::OVERSIZE, "message too large"),
            _ => (ErrorCode::BAD_MESSAGE, "WebSocket protocol error"),
        };
        let r = reason(format_args!("{what}: {e}"));
        self.send_error(i, code, 0, &r);
        self.close(i, e.close_code(), &r);
    }

    fn on_ws_control(&mut self, i: usize, kind: FrameKind, payload: &[u8]) {
        match kind {
            FrameKind::Ping => {
                // Pings count against the message rate like any message.
                let now = self.now_us;
                let c = &mut self.conns[i];
                if !c.msg_bucket.try_take(1, now) {
                    self.stats.count_drop(DropReason::RateLimited);
                    return;
                }
                if !self.push_ctrl_frame(i, FrameKind::Pong, payload) {
                    return self.overflowed(i);
                }
                self.mark_dirty(i);
            }
            FrameKind::Pong => {}
            FrameKind::Close => {
                // Echo the peer's code if it may be sent (RFC 6455 §7.4);
                // anything else is a protocol error.
                let code = match ws::parse_close(payload) {
                    Ok((1005, _)) => close_code::NORMAL,
                    Ok((code, why)) if matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) => {
                        log::debug!("connection {i}: peer closed ({code} {why})");
                        code
                    }
                    Ok((code, _)) => {
                        self.stats.count_fault(Fault::WebSocket);
                        log::warn!("connection {i}: close frame with the invalid code {code}");
                        close_code::PROTOCOL_ERROR
                    }
                    Err(_) => {
                        self.stats.count_fault(Fault::WebSocket);
                        close_code::PROTOCOL_ERROR
                    }
                };
                self.close(i, code, "");
            }
            _ => {}
        }
    }

    fn on_ws_message(&mut self, i: usize, kind: FrameKind, bytes: &mut [u8]) {
        self.stats.bytes_in += bytes.len() as u64;
        self.stats.monitor.record_in(self.now_us, bytes.len());
        if kind == FrameKind::Text && self.conns[i].json {
            return self.on_json_text(i, bytes);
        }
        if kind == FrameKind::Text {
            self.stats.count_fault(Fault::TextMessage);
            self.send_error(
                i,
                ErrorCode::BAD_MESSAGE,
                0,
                "text messages are not part of protocol 1.0: send each message as one binary WebSocket message (or ask for the poselink.json subprotocol to speak JSON)",
            );
            return;
        }
        self.on_binary_message(i, bytes);
    }

    /// A JSON-mode client's text message: translated to the binary message and
    /// handled as one (limits, checks and relay included).
    fn on_json_text(&mut self, i: usize, text: &[u8]) {
        let mut buf = std::mem::take(&mut self.json_in);
        buf.resize(self.cfg.max_message.max(8 * 1024), 0);
        let c = &mut self.conns[i];
        let (mut pose_seq, mut audio_seq) = (c.json_pose_seq, c.json_audio_seq);
        let member = c.member;
        let handles: Vec<(String, u16)> = c
            .rooms
            .iter()
            .filter_map(|m| Some((self.rooms.name(m.handle)?.to_string(), m.handle)))
            .collect();
        let lookup = |name: &str| handles.iter().find(|h| h.0 == name).map(|h| h.1);
        let mut ctx = json::Inbound {
            member,
            now_us: self.now_us,
            room: &lookup,
            pose_seq: &mut pose_seq,
            audio_seq: &mut audio_seq,
        };
        let result = json::to_binary(text, &mut ctx, &mut buf);
        let c = &mut self.conns[i];
        c.json_pose_seq = pose_seq;
        c.json_audio_seq = audio_seq;
        match result {
            Ok(n) => self.on_binary_message(i, &mut buf[..n]),
            Err(why) => {
                let (code, reason) = json::translation_error(&why);
                log::debug!("connection {i}: {reason}");
                self.send_error(i, code, 0, &reason);
            }
        }
        self.json_in = buf;
    }

    fn on_binary_message(&mut self, i: usize, bytes: &mut [u8]) {
        // Flood control, before any parsing.
        let now = self.now_us;
        let c = &mut self.conns[i];
        let len = bytes.len() as u64;
        if c.msg_bucket.available(now) < 1 || c.byte_bucket.available(now) < len {
            c.flood_refused += 1;
            self.stats.count_drop(DropReason::RateLimited);
            let refused = c.flood_refused;
            if refused > self.cfg.flood_close_after {
                let r = reason(format_args!(
                    "{refused} messages in a row over the rate limit ({} messages/s, {} bytes/s); closing",
                    self.cfg.rate_messages, self.cfg.rate_bytes
                ));
                log::warn!("connection {i} ({}): {r}", c.peer);
                self.send_error(i, ErrorCode::RATE_LIMITED, 0, &r);
                self.close(i, APP_CLOSE_BASE + ErrorCode::RATE_LIMITED.0, "flooding");
            } else if now.saturating_sub(c.last_rate_error_us) >= 1_000_000 {
                c.last_rate_error_us = now;
                let r = reason(format_args!(
                    "over the rate limit ({} messages/s, {} bytes/s): messages are being dropped; slow down",
                    self.cfg.rate_messages, self.cfg.rate_bytes
                ));
                log::warn!("connection {i} ({}): {r}", c.peer);
                self.send_error(i, ErrorCode::RATE_LIMITED, 0, &r);
            }
            return;
        }
        c.msg_bucket.try_take(1, now);
        c.byte_bucket.try_take(len, now);
        c.flood_refused = 0;

        let packet = match Packet::new_checked(&bytes[..]) {
            Ok(p) => p,
            Err(e) => return self.refuse_bad(i, bytes.get(1).copied().unwrap_or(0), e),
        };
        let header = packet.header();
        let state = self.conns[i].state;
        if state == State::AwaitHello {
            self.stats.messages_in[2] += 1;
            return self.on_hello(i, &packet);
        }
        match header.kind {
            Kind::Pose | Kind::Audio => self.on_media(i, &packet),
            _ => {
                self.stats.messages_in[2] += 1;
                let mut scratch = std::mem::take(&mut self.scratch);
                match Message::parse(&packet, &mut scratch) {
                    Ok(m) => self.on_control(i, &header, m),
                    Err(e) => self.refuse_bad(i, header.kind as u8, e),
                }
                self.scratch = scratch;
            }
        }
    }

    /// Answers a message that breaks the protocol. Before the hello, or for an
    /// unknown major version, the connection is closed too.
    fn refuse_bad(&mut self, i: usize, about: u8, e: proto::Error) {
        let code = match e {
            proto::Error::UnknownVersion { .. } => ErrorCode::UNSUPPORTED_VERSION,
            proto::Error::Oversize { .. } => ErrorCode::OVERSIZE,
            _ => ErrorCode::BAD_MESSAGE,
        };
        let r = reason(format_args!("{e}"));
        log::warn!(
            "connection {i} ({}): refused a message: {r}",
            self.conns[i].peer
        );
        self.send_error(i, code, about, &r);
        if code == ErrorCode::UNSUPPORTED_VERSION || self.conns[i].state == State::AwaitHello {
            self.close(i, APP_CLOSE_BASE + code.0, code.name());
        }
    }

    // ---- sessions --------------------------------------------------------------

    fn on_hello(&mut self, i: usize, packet: &Packet<&[u8]>) {
        let header = packet.header();
        if header.kind != Kind::Hello {
            let r = reason(format_args!(
                "the first message must be a hello (got {}); see docs/PROTOCOL.md",
                header.kind.name()
            ));
            self.send_error(i, ErrorCode::UNAUTHENTICATED, header.kind as u8, &r);
            return self.close(
                i,
                APP_CLOSE_BASE + ErrorCode::UNAUTHENTICATED.0,
                "hello expected",
            );
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let hello = match Message::parse(&packet, &mut scratch) {
            Ok(Message::Hello(h)) => h,
            Ok(_) => unreachable!("the kind was checked"),
            Err(e) => {
                self.scratch = scratch;
                return self.refuse_bad(i, Kind::Hello as u8, e);
            }
        };
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let verdict = match (&self.key, self.cfg.dev) {
            (_, true) if hello.token.is_empty() => Ok(None),
            (Some(key), _) => key.verify(hello.token, now_secs).map(Some),
            (None, _) => Ok(None),
        };
        let client_name = reason(format_args!(
            "{}",
            hello.client.get(..64).unwrap_or(hello.client)
        ));
        let resume_req = hello.resume;
        self.scratch = scratch;
        let claims = match verdict {
            Ok(c) => c,
            Err(e) => {
                let code = match e {
                    TokenError::Missing => ErrorCode::UNAUTHENTICATED,
                    TokenError::Expired => ErrorCode::TOKEN_EXPIRED,
                    _ => ErrorCode::TOKEN_INVALID,
                };
                let r = reason(format_args!("{e}"));
                log::warn!(
                    "connection {i} ({}): hello refused: {r}",
                    self.conns[i].peer
                );
                self.send_error(i, code, Kind::Hello as u8, &r);
                return self.close(i, APP_CLOSE_BASE + code.0, code.name());
            }
        };
        // A resumed session keeps its member id (if still free) and its audio
        // sequence numbers.
        let resumed = if resume_req == 0 {
            None
        } else {
            let now = self.now_us;
            let sub = claims.as_ref().map(|c| c.sub.as_str());
            self.resumable
                .iter()
                .position(|r| {
                    r.id == resume_req
                        && r.until_us > now
                        && sub.is_none_or(|u| r.user.as_str() == u)
                })
                .inspect(|&k| self.resumable[k].id = 0)
        };
        let member = match resumed {
            Some(k) if self.member_slot[self.resumable[k].member as usize] == 0 => {
                let m = self.resumable[k].member;
                self.member_slot[m as usize] = i as u32 + 1;
                Some(m)
            }
            _ => self.assign_member(i),
        };
        let Some(member) = member else {
            self.send_error(
                i,
                ErrorCode::HUB_FULL,
                Kind::Hello as u8,
                "no member id is free; try again later",
            );
            return self.close(i, APP_CLOSE_BASE + ErrorCode::HUB_FULL.0, "hub full");
        };
        let c = &mut self.conns[i];
        c.member = member;
        c.user.clear();
        match &claims {
            Some(cl) => {
                let _ = c.user.push_str(&cl.sub);
            }
            None => {
                let _ = write!(c.user, "anon-{member}");
            }
        }
        c.claims = claims;
        c.resumed_audio.clear();
        if let Some(k) = resumed {
            c.resumed_audio.extend_from_slice(&self.resumable[k].audio);
        }
        c.state = State::Session;
        c.last_ping_us = self.now_us;
        self.sessions += 1;
        self.stats.sessions_opened += 1;
        self.session_counter = self
            .session_counter
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        c.resume_id = self.session_counter | 1;
        let user = c.user.clone();
        log::info!(
            "session {member} for {user} from {} ({client_name}){}",
            c.peer,
            if resumed.is_some() { ", resumed" } else { "" }
        );
        let welcome = Message::Welcome(Welcome {
            minor: PROTOCOL_MINOR,
            member,
            user: &user,
            resume: self.conns[i].resume_id,
            server_time_us: self.now_us,
            heartbeat_ms: self.cfg.heartbeat_ms as u32,
            max_message: self.cfg.max_message as u32,
        });
        self.send_control(i, 0, &welcome);
    }

    fn assign_member(&mut self, i: usize) -> Option<u16> {
        for _ in 0..65_536 {
            self.next_member = self.next_member.wrapping_add(1);
            let m = self.next_member;
            if m != 0 && self.member_slot[m as usize] == 0 {
                self.member_slot[m as usize] = i as u32 + 1;
                return Some(m);
            }
        }
        None
    }

    fn slot_of_member(&self, member: u16) -> Option<usize> {
        match self.member_slot[member as usize] {
            0 => None,
            s => Some(s as usize - 1),
        }
    }

    fn on_control(&mut self, i: usize, header: &Header, msg: Message<'_>) {
        let about = header.kind as u8;
        match msg {
            Message::Join(j) => self.on_join(i, j.room, j.role),
            Message::Leave(l) => match self.rooms.find(l.room) {
                Some(h) if self.conns[i].membership(h).is_some() => {
                    self.leave_room(i, h, LeaveReason::Left, true);
                }
                _ => self.send_error(i, ErrorCode::NOT_MEMBER, about, "not a member of that room"),
            },
            Message::RoleChanged(rc) => {
                // An owner may give a member no more than the member's own token
                // grants in this room: the token is the authority on rights.
                let target = self.slot_of_member(rc.member);
                let granted = match (target, self.rooms.name(header.room)) {
                    (Some(t), Some(name)) => match &self.conns[t].claims {
                        Some(cl) => cl.allows(name, rc.role).is_ok(),
                        None => true,
                    },
                    _ => true, // the registry answers for unknown members and rooms
                };
                if !granted
                    && self
                        .rooms
                        .role_of(header.room, i as u32)
                        .is_some_and(|r| r.may_moderate())
                {
                    let r = reason(format_args!(
                        "member {}'s token does not grant the role {} in this room",
                        rc.member,
                        rc.role.name()
                    ));
                    return self.send_error(i, ErrorCode::FORBIDDEN, about, &r);
                }
                match self
                    .rooms
                    .set_role(header.room, i as u32, rc.member, rc.role)
                {
                    Ok(()) => {
                        if let Some(t) = self.slot_of_member(rc.member)
                            && let Some(m) = self.conns[t].membership_mut(header.room)
                        {
                            m.role = rc.role;
                        }
                        let msg = Message::RoleChanged(rc);
                        self.broadcast(header.room, None, &msg);
                    }
                    Err(e) => self.room_error(i, about, e),
                }
            }
            Message::Kick(k) => match self
                .rooms
                .kick(header.room, i as u32, k.member, self.now_us)
            {
                Ok(m) => {
                    let t = m.conn as usize;
                    let r = reason(format_args!("{}", k.reason));
                    let kick = Message::Kick(proto::Kick {
                        member: k.member,
                        reason: &r,
                    });
                    self.send_control(t, header.room, &kick);
                    self.forget_membership(t, header.room);
                    let left = Message::MemberLeft(MemberLeft {
                        member: k.member,
                        reason: LeaveReason::Kicked,
                    });
                    self.broadcast(header.room, None, &left);
                    log::info!(
                        "member {} kicked from room {} by {}",
                        k.member,
                        header.room,
                        self.conns[i].member
                    );
                }
                Err(e) => self.room_error(i, about, e),
            },
            Message::CloseRoom(cr) => {
                let conns: Vec<u32> = self
                    .rooms
                    .members(header.room)
                    .iter()
                    .map(|m| m.conn)
                    .collect();
                match self.rooms.close(header.room, i as u32, |_| {}) {
                    Ok(()) => {
                        let r = reason(format_args!("{}", cr.reason));
                        let msg = Message::CloseRoom(proto::CloseRoom { reason: &r });
                        for t in conns {
                            self.send_control(t as usize, header.room, &msg);
                            self.forget_membership(t as usize, header.room);
                        }
                        log::info!(
                            "room {} closed by member {}",
                            header.room,
                            self.conns[i].member
                        );
                    }
                    Err(e) => self.room_error(i, about, e),
                }
            }
            Message::Ping(p) => {
                let pong = Message::Pong(Pong {
                    t0_us: p.t0_us,
                    t1_us: self.now_us,
                    t2_us: self.now(),
                });
                self.send_control(i, 0, &pong);
            }
            Message::NeedsKeyframe(nk) => self.on_needs_keyframe(i, header.room, nk),
            Message::Pong(_) | Message::Ack(_) => {}
            Message::Error(e) => {
                log::debug!(
                    "connection {i} reports error {} ({}): {}",
                    e.code.0,
                    e.code.name(),
                    e.reason
                );
            }
            Message::Hello(_) => self.send_error(
                i,
                ErrorCode::BAD_MESSAGE,
                about,
                "the hello was already accepted; send it once per connection",
            ),
            _ => {
                let r = reason(format_args!(
                    "{} is sent by the hub, not to it",
                    header.kind.name()
                ));
                self.send_error(i, ErrorCode::BAD_MESSAGE, about, &r);
            }
        }
    }

    fn room_error(&mut self, i: usize, about: u8, e: RoomError) {
        let code = match e {
            RoomError::BadName => ErrorCode::BAD_MESSAGE,
            RoomError::NoSuchRoom => ErrorCode::NO_SUCH_ROOM,
            RoomError::RoomFull => ErrorCode::ROOM_FULL,
            RoomError::HubFull => ErrorCode::HUB_FULL,
            RoomError::NotMember => ErrorCode::NOT_MEMBER,
            RoomError::NoSuchMember => ErrorCode::NO_SUCH_MEMBER,
            _ => ErrorCode::FORBIDDEN,
        };
        let r = reason(format_args!("{e}"));
        self.send_error(i, code, about, &r);
    }

    fn on_join(&mut self, i: usize, room: &str, role: proto::Role) {
        let about = Kind::Join as u8;
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let may_create = match &self.conns[i].claims {
            None => true, // dev mode
            Some(cl) if now_secs >= cl.exp => {
                return self.send_error(
                    i,
                    ErrorCode::TOKEN_EXPIRED,
                    about,
                    "the token has expired; reconnect with a new one",
                );
            }
            Some(cl) => match cl.allows(room, role) {
                Ok(create) => create,
                Err(e) => {
                    let r = reason(format_args!("{e} (room {room:?}, role {})", role.name()));
                    return self.send_error(i, ErrorCode::FORBIDDEN, about, &r);
                }
            },
        };
        let c = &self.conns[i];
        let already = self
            .rooms
            .find(room)
            .is_some_and(|h| c.membership(h).is_some());
        if !already && c.rooms.len() >= self.cfg.max_rooms_per_connection {
            let r = reason(format_args!(
                "this connection is in {} rooms, the most one connection may join; leave one first",
                c.rooms.len()
            ));
            return self.send_error(i, ErrorCode::HUB_FULL, about, &r);
        }
        let user = c.user.clone();
        let joined = match self
            .rooms
            .join(room, i as u32, c.member, &user, role, may_create)
        {
            Ok(j) => j,
            Err(e) => return self.room_error(i, about, e),
        };
        let h = joined.handle;
        let member = self.conns[i].member;
        match self.conns[i].membership_mut(h) {
            Some(m) => m.role = role,
            None => {
                let c = &mut self.conns[i];
                let audio_last = c
                    .resumed_audio
                    .iter()
                    .find(|(room, _)| *room == h)
                    .map(|&(_, seq)| seq);
                c.rooms.push(Membership {
                    handle: h,
                    role,
                    audio_last,
                    ack_pending: None,
                })
            }
        }
        // The snapshot to the joiner (control path: the list may allocate).
        {
            let members = self.rooms.members(h);
            let infos: Vec<MemberInfo<'_>> = members
                .iter()
                .map(|m| MemberInfo {
                    member: m.member,
                    role: m.role,
                    user: &m.user,
                })
                .collect();
            let header = Header::new(
                Kind::RoomSnapshot,
                h,
                0,
                self.conns[i].ctrl_seq,
                self.now_us,
            );
            let mut scratch = std::mem::take(&mut self.out);
            let n = encode_snapshot(&header, room, role, &infos, &mut scratch);
            drop(infos);
            match n {
                Ok(n) => {
                    self.conns[i].ctrl_seq = self.conns[i].ctrl_seq.wrapping_add(1);
                    self.push_message(i, &scratch[..n]);
                }
                Err(e) => log::warn!("cannot encode the snapshot of room {room}: {e}"),
            }
            self.out = scratch;
        }
        let info = MemberInfo {
            member,
            role,
            user: &user,
        };
        if joined.rejoined {
            self.broadcast(
                h,
                Some(i),
                &Message::RoleChanged(RoleChanged { member, role }),
            );
        } else {
            self.broadcast(
                h,
                Some(i),
                &Message::MemberJoined(MemberJoined { member: info }),
            );
        }
        if joined.created
            && let Some(rc) = self.room_counts.get_mut(h as usize)
        {
            *rc = RoomCounts::default();
        }
        log::info!(
            "{user} (member {member}) joined room {room} (handle {h}) as {}{}",
            role.name(),
            if joined.created { ", creating it" } else { "" }
        );
        // Cached keyframes, so the joiner has every skeleton at once; then fresh
        // keyframes from the publishers, so that their next deltas decode.
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let p = self.rooms.members(h)[k].conn as usize;
            if p == i {
                continue;
            }
            for s in 0..self.conns[p].keyframes.len() {
                let kf = self.conns[p].keyframes[s];
                if kf.room == h {
                    self.serve_keyframe(i, p, kf);
                }
            }
        }
        self.request_owed_keyframes();
        self.mark_dirty(i);
    }

    /// Sends publisher `p`'s cached keyframe to receiver `r`, which then waits for
    /// a fresh one (skipping deltas it could not decode), and owes a request.
    fn serve_keyframe(&mut self, r: usize, p: usize, kf: KeyframeSlot) {
        self.enqueue_media(r, kf.block);
        self.stats.keyframes_served += 1;
        self.conns[r].resync_set(p as u32, true);
        if self.keyframe_wanted.len() < self.keyframe_wanted.capacity() {
            self.keyframe_wanted.push((p as u32, kf.room, kf.person));
        }
    }

    fn on_needs_keyframe(&mut self, i: usize, room: u16, nk: NeedsKeyframe) {
        let about = Kind::NeedsKeyframe as u8;
        if self.conns[i].membership(room).is_none() {
            return self.send_error(i, ErrorCode::NOT_MEMBER, about, "not a member of that room");
        }
        let Some(p) = self
            .slot_of_member(nk.publisher)
            .filter(|&p| self.conns[p].membership(room).is_some())
        else {
            return self.send_error(
                i,
                ErrorCode::NO_SUCH_MEMBER,
                about,
                "that publisher is not in the room",
            );
        };
        if self.conns[i].resync_get(p as u32) {
            // Already waiting for a fresh keyframe; ask again in case it was lost.
            self.keyframe_wanted.push((p as u32, room, nk.person));
        } else if let Some(kf) = self.conns[p]
            .keyframes
            .iter()
            .copied()
            .find(|k| k.room == room && k.person == nk.person)
        {
            self.serve_keyframe(i, p, kf);
        } else {
            self.conns[i].resync_set(p as u32, true);
            self.keyframe_wanted.push((p as u32, room, nk.person));
        }
        self.request_owed_keyframes();
    }

    /// Forwards owed keyframe requests to their publishers, at most one per
    /// publisher per 100 ms.
    fn request_owed_keyframes(&mut self) {
        while let Some((p, room, person)) = self.keyframe_wanted.pop() {
            let p = p as usize;
            let c = &self.conns[p];
            if c.state != State::Session
                || self.now_us.saturating_sub(c.last_keyframe_request_us) < KEYFRAME_REQUEST_GAP_US
                    && c.last_keyframe_request_us != 0
            {
                continue;
            }
            let member = c.member;
            self.conns[p].last_keyframe_request_us = self.now_us;
            self.stats.keyframe_requests += 1;
            let msg = Message::NeedsKeyframe(NeedsKeyframe {
                publisher: member,
                person,
            });
            self.send_control(p, room, &msg);
        }
    }

    /// Removes `i` from room `h`, telling the others (and `i`, if `tell_self`).
    fn leave_room(&mut self, i: usize, h: u16, why: LeaveReason, tell_self: bool) {
        if self.rooms.leave(h, i as u32, self.now_us).is_err() {
            return;
        }
        let member = self.conns[i].member;
        self.forget_membership(i, h);
        let msg = Message::MemberLeft(MemberLeft {
            member,
            reason: why,
        });
        self.broadcast(h, None, &msg);
        if tell_self {
            self.send_control(i, h, &msg);
        }
    }

    /// Drops `i`'s per-room state for `h` (the registry already has).
    fn forget_membership(&mut self, i: usize, h: u16) {
        let c = &mut self.conns[i];
        c.rooms.retain(|m| m.handle != h);
        let pool = &mut self.pool;
        c.keyframes.retain(|k| {
            if k.room == h {
                pool.release(k.block);
                false
            } else {
                true
            }
        });
    }

    // ---- media -----------------------------------------------------------------

    fn on_media(&mut self, i: usize, packet: &Packet<&[u8]>) {
        let header = packet.header();
        let audio = header.kind == Kind::Audio;
        self.stats.messages_in[audio as usize] += 1;
        if !audio {
            // The monitor's fps: pose frames received from publishers.
            self.stats.monitor.record_frame(self.now_us);
        }
        let about = header.kind as u8;
        let c = &self.conns[i];
        let Some(m) = c.membership(header.room).copied() else {
            let r = reason(format_args!(
                "not a member of room handle {}; join the room first",
                header.room
            ));
            return self.send_error(i, ErrorCode::NOT_MEMBER, about, &r);
        };
        if !m.role.may_publish() {
            return self.send_error(
                i,
                ErrorCode::FORBIDDEN,
                about,
                "viewers may not publish; ask the room's owner for the member role",
            );
        }
        if header.sender != c.member {
            let r = reason(format_args!(
                "the sender field must be your member id {} (got {})",
                c.member, header.sender
            ));
            return self.send_error(i, ErrorCode::BAD_MESSAGE, about, &r);
        }
        let bytes = packet.as_bytes();
        if bytes.len() > MAX_MEDIA {
            let r = reason(format_args!(
                "a {} message of {} bytes is over the {MAX_MEDIA}-byte relay limit for media",
                header.kind.name(),
                bytes.len()
            ));
            return self.send_error(i, ErrorCode::OVERSIZE, about, &r);
        }
        // Check the payload once here, so that receivers get only valid messages.
        let mut scratch = std::mem::take(&mut self.scratch);
        let checked = Message::parse(&packet, &mut scratch).map(|msg| match msg {
            Message::Pose(p) => (p.person, !matches!(p.coding, PoseCoding::Delta { .. })),
            _ => (0, false),
        });
        self.scratch = scratch;
        let (person, standalone) = match checked {
            Ok(v) => v,
            Err(e) => return self.refuse_bad(i, about, e),
        };
        if audio {
            if let Some(last) = m.audio_last
                && (header.seq.wrapping_sub(last) as i32) <= 0
            {
                self.stats.count_drop(DropReason::DuplicateAudio);
                // Acknowledge again: the publisher replays what it thinks is lost.
                if let Some(mm) = self.conns[i].membership_mut(header.room) {
                    mm.ack_pending = Some(last);
                }
                return;
            }
            if let Some(mm) = self.conns[i].membership_mut(header.room) {
                mm.audio_last = Some(header.seq);
                mm.ack_pending = Some(header.seq);
            }
        }
        let mut head = [0u8; 4];
        let hl = ws::write_header(&mut head, FrameKind::Binary, true, bytes.len())
            .expect("4 bytes hold a media frame header");
        let meta = Meta {
            audio,
            standalone,
            publisher: i as u32,
            room: header.room,
            person,
        };
        let Some(block) = self.pool.store(&head[..hl], bytes, meta, self.now_us) else {
            // Cannot happen by the pool's sizing; count it rather than panic.
            log::warn!("relay pool exhausted; dropping a message from connection {i}");
            self.stats.count_drop(if audio {
                DropReason::SlowAudio
            } else {
                DropReason::SlowPose
            });
            return;
        };
        if standalone && !audio {
            self.cache_keyframe(i, header.room, person, block);
        }
        let h = header.room;
        if !audio && let Some(rc) = self.room_counts.get_mut(h as usize) {
            rc.poses += 1;
        }
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let r = self.rooms.members(h)[k].conn as usize;
            if r == i || self.conns[r].state != State::Session {
                continue;
            }
            if !audio && !self.conns[r].json {
                if standalone {
                    self.conns[r].resync_set(i as u32, false);
                } else if self.conns[r].resync_get(i as u32) {
                    self.stats.count_drop(DropReason::AwaitingKeyframe);
                    self.room_counts[h as usize].drops += 1;
                    continue;
                }
            }
            self.json_live = true;
            self.enqueue_media(r, block);
            self.json_live = false;
        }
        self.json_media = None;
        self.pool.release(block);
        if !self.keyframe_wanted.is_empty() {
            self.request_owed_keyframes();
        }
    }

    fn cache_keyframe(&mut self, i: usize, room: u16, person: u32, block: u32) {
        let slots = self.cfg.keyframe_slots;
        let now = self.now_us;
        let c = &mut self.conns[i];
        let slot = KeyframeSlot {
            room,
            person,
            block,
            stored_us: now,
        };
        self.pool.acquire(block);
        if let Some(k) = c
            .keyframes
            .iter_mut()
            .find(|k| k.room == room && k.person == person)
        {
            self.pool.release(k.block);
            *k = slot;
        } else if c.keyframes.len() < slots {
            c.keyframes.push(slot);
        } else if let Some(k) = c.keyframes.iter_mut().min_by_key(|k| k.stored_us) {
            self.pool.release(k.block);
            *k = slot;
        }
    }

    /// Queues media block `b` for receiver `r`; when the queue is full the oldest
    /// pose goes (or, with no pose queued, the oldest audio), counted, and the
    /// receiver waits for that publisher's next keyframe.
    fn enqueue_media(&mut self, r: usize, b: u32) {
        if self.conns[r].json {
            return self.enqueue_json_media(r, b);
        }
        let depth = self.cfg.queue_depth;
        let c = &mut self.conns[r];
        if c.data.len() >= depth {
            let pool = &self.pool;
            let victim = c
                .data
                .iter()
                .position(|&x| !pool.meta(x).audio)
                .unwrap_or(0);
            let old = c.data.remove(victim).expect("the queue is full");
            let meta = self.pool.meta(old);
            self.pool.release(old);
            if let Some(rc) = self.room_counts.get_mut(meta.room as usize) {
                rc.drops += 1;
            }
            if meta.audio {
                self.stats.count_drop(DropReason::SlowAudio);
            } else {
                self.stats.count_drop(DropReason::SlowPose);
                c.resync_set(meta.publisher, true);
                if self.keyframe_wanted.len() < self.keyframe_wanted.capacity() {
                    self.keyframe_wanted
                        .push((meta.publisher, meta.room, meta.person));
                }
            }
        }
        if !c.has_output() {
            c.last_progress_us = self.now_us;
        }
        c.data.push_back(b);
        self.pool.acquire(b);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(r as u32);
        }
    }

    // ---- output ----------------------------------------------------------------

    /// A media message for a JSON receiver: translated to JSON text (once per
    /// fan-out, for every JSON receiver of the room) and written to its control
    /// FIFO; dropped and counted when that has no room (a slow JSON receiver loses
    /// media, never control).
    fn enqueue_json_media(&mut self, r: usize, b: u32) {
        let text = match &self.json_media {
            Some((blk, t)) if *blk == b && self.json_live => t.clone(),
            _ => {
                let t = self.media_to_json(b);
                if self.json_live {
                    self.json_media = Some((b, t.clone()));
                }
                t
            }
        };
        let Some(text) = text else {
            return;
        };
        let meta = self.pool.meta(b);
        let audio = meta.audio;
        if self.conns[r].ctrl_room(self.ctrl_size) < text.len() + 16 {
            if let Some(rc) = self.room_counts.get_mut(meta.room as usize) {
                rc.drops += 1;
            }
            self.stats.count_drop(if audio {
                DropReason::SlowAudio
            } else {
                DropReason::SlowPose
            });
            return;
        }
        if self.push_ctrl_frame(r, FrameKind::Text, text.as_bytes()) {
            self.stats.delivered += 1;
            self.stats.messages_out += 1;
            if !self.conns[r].has_output() {
                self.conns[r].last_progress_us = self.now_us;
            }
            self.mark_dirty(r);
        }
    }

    /// A relayed media message as JSON. Pose is decoded: a live stream through
    /// the hub's decoder for it (created on first use; a delta it cannot decode
    /// yet asks the publisher for a keyframe), a served keyframe on its own.
    fn media_to_json(&mut self, b: u32) -> Option<String> {
        let stored = self.pool.bytes(b);
        // The block starts with the binary frame's header: 2 bytes, or 4 with
        // a 16-bit length.
        let hl = if stored.get(1)? & 0x7f == 126 { 4 } else { 2 };
        let bytes = stored.get(hl..)?.to_vec();
        let meta = self.pool.meta(b);
        let packet = Packet::new_checked(&bytes[..]).ok()?;
        let header = packet.header();
        let room = self.rooms.name(header.room).map(str::to_string);
        let mut scratch = std::mem::take(&mut self.scratch);
        let text = match Message::parse(&packet, &mut scratch) {
            Ok(Message::Audio(a)) => Some(json::audio_to_json(&header, &a, room.as_deref())),
            Ok(Message::Pose(p)) => {
                let standalone = !matches!(p.coding, PoseCoding::Delta { .. });
                let key = (header.sender, header.room, p.person);
                let decoded = if standalone && !self.json_live {
                    PoseDecoder::default().decode(&header, &p).copied()
                } else {
                    let k = match self.json_decoders.iter().position(|d| d.0 == key) {
                        Some(k) => k,
                        None => {
                            if self.json_decoders.len() >= JSON_DECODERS {
                                self.json_decoders.remove(0);
                            }
                            self.json_decoders.push((key, PoseDecoder::default()));
                            self.json_decoders.len() - 1
                        }
                    };
                    self.json_decoders[k].1.decode(&header, &p).copied()
                };
                match decoded {
                    Ok(frame) => Some(json::pose_to_json(
                        &header,
                        &frame,
                        room.as_deref(),
                        standalone,
                    )),
                    Err(_) => {
                        // Joined mid-stream: ask the publisher for a keyframe.
                        if self.keyframe_wanted.len() < self.keyframe_wanted.capacity() {
                            self.keyframe_wanted
                                .push((meta.publisher, header.room, p.person));
                        }
                        None
                    }
                }
            }
            _ => None,
        };
        self.scratch = scratch;
        text
    }

    fn mark_dirty(&mut self, i: usize) {
        if let Some(c) = self.conns.get_mut(i)
            && !c.dirty
            && c.state != State::Free
        {
            c.dirty = true;
            self.dirty.push(i as u32);
        }
    }

    /// Encodes a control message (hub as sender) into `i`'s control FIFO.
    fn send_control(&mut self, i: usize, room: u16, msg: &Message<'_>) {
        if !matches!(self.conns[i].state, State::AwaitHello | State::Session) {
            return;
        }
        let seq = self.conns[i].ctrl_seq;
        let header = Header::new(msg.kind(), room, 0, seq, self.now_us);
        let mut out = std::mem::take(&mut self.out);
        match encode_control(&header, msg, &mut out) {
            Ok(n) => {
                self.conns[i].ctrl_seq = seq.wrapping_add(1);
                self.push_message(i, &out[..n]);
            }
            Err(e) => log::warn!("cannot encode a {} message: {e}", msg.kind().name()),
        }
        self.out = out;
    }

    fn push_message(&mut self, i: usize, bytes: &[u8]) {
        let pushed = if self.conns[i].json {
            let mut scratch = std::mem::take(&mut self.scratch);
            let rooms = &self.rooms;
            let text =
                json::control_to_json(bytes, &mut scratch, &|h| rooms.name(h).map(str::to_string));
            self.scratch = scratch;
            match text {
                Some(t) => self.push_ctrl_frame(i, FrameKind::Text, t.as_bytes()),
                None => true, // nothing a JSON client is sent
            }
        } else {
            self.push_ctrl_frame(i, FrameKind::Binary, bytes)
        };
        if pushed {
            self.stats.messages_out += 1;
            if !self.conns[i].has_output() {
                self.conns[i].last_progress_us = self.now_us;
            }
            self.mark_dirty(i);
        } else {
            self.overflowed(i);
        }
    }

    fn send_error(&mut self, i: usize, code: ErrorCode, about: u8, why: &str) {
        self.stats.count_error(code);
        let msg = Message::Error(ErrorMsg {
            code,
            about,
            reason: why,
        });
        self.send_control(i, 0, &msg);
    }

    /// Sends `msg` to every session member of room `h` but `except`.
    fn broadcast(&mut self, h: u16, except: Option<usize>, msg: &Message<'_>) {
        let n = self.rooms.members(h).len();
        for k in 0..n {
            let Some(t) = self.rooms.members(h).get(k).map(|m| m.conn as usize) else {
                break;
            };
            if Some(t) != except {
                self.send_control(t, h, msg);
            }
        }
    }

    /// The control FIFO is full: the receiver is not reading. Control is never
    /// dropped, so the connection goes.
    fn overflowed(&mut self, i: usize) {
        self.stats.count_fault(Fault::SlowConsumer);
        self.stats.count_error(ErrorCode::SLOW_CONSUMER);
        log::warn!(
            "connection {i} ({}): its control buffer ({} bytes) is full; the peer is not reading; closing",
            self.conns[i].peer,
            self.cfg.control_buffer
        );
        self.teardown(i, LeaveReason::TimedOut);
    }

    fn flush_dirty(&mut self) {
        let mut k = 0;
        while k < self.dirty.len() {
            let i = self.dirty[k] as usize;
            k += 1;
            self.flush(i);
        }
        self.dirty.clear();
    }

    fn flush(&mut self, i: usize) {
        let now = self.now();
        let c = &mut self.conns[i];
        c.dirty = false;
        if c.state == State::Free {
            return;
        }
        let stats = &mut self.stats;
        let sz = self.ctrl_size;
        let ctrl = &self.ctrl_arena[i * sz..(i + 1) * sz];
        let result = c.flush(ctrl, &mut self.pool, |pool, b| {
            stats.delivered += 1;
            stats.messages_out += 1;
            let us = now.saturating_sub(pool.recv_us(b));
            stats.relay_latency.record(us);
            stats.monitor.record_latency_us(now, us);
            stats.monitor.record_out(now, pool.bytes(b).len());
        });
        match result {
            Ok(end) => {
                let (FlushEnd::Empty(n) | FlushEnd::Blocked(n)) = end;
                self.stats.bytes_out += n as u64;
                if n > 0 {
                    c.last_progress_us = now;
                }
                let want = matches!(end, FlushEnd::Blocked(_));
                if want != c.want_write
                    && let Some(s) = c.stream.as_mut()
                {
                    let interest = if want {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    if self.registry.reregister(s, Token(i), interest).is_ok() {
                        c.want_write = want;
                    }
                }
                if !want && c.close_when_flushed && !c.write_shut {
                    c.write_shut = true;
                    if let Some(s) = c.stream.as_ref() {
                        let _ = s.shutdown(Shutdown::Write);
                    }
                }
            }
            Err(e) => {
                log::debug!("connection {i}: write error {e}");
                self.stats.count_fault(Fault::Io);
                self.teardown(i, LeaveReason::Disconnected);
            }
        }
    }

    // ---- closing ---------------------------------------------------------------

    /// Sends a close frame, stops taking messages, and closes once it is written
    /// and the peer has closed (or after a linger).
    fn close(&mut self, i: usize, code: u16, why: &str) {
        self.close_as(i, code, why, LeaveReason::Disconnected);
    }

    /// [`close`](Self::close), telling the rooms why the member left.
    fn close_as(&mut self, i: usize, code: u16, why: &str, leave: LeaveReason) {
        let c = &mut self.conns[i];
        if matches!(c.state, State::Free | State::Closing) {
            return;
        }
        let was_session = c.state == State::Session;
        let mut payload = [0u8; 125];
        let n = ws::close_payload(&mut payload, code, why);
        if !self.push_ctrl_frame(i, FrameKind::Close, &payload[..n]) {
            // Not even the close frame fits: the peer is not reading.
            return self.overflowed(i);
        }
        let c = &mut self.conns[i];
        c.close_when_flushed = true;
        c.close_deadline_us = self.now_us + LINGER_US;
        if was_session {
            self.end_session(i, leave);
        }
        self.conns[i].state = State::Closing;
        self.mark_dirty(i);
    }

    /// Leaves every room (telling the others) and frees the member id.
    fn end_session(&mut self, i: usize, why: LeaveReason) {
        if self.conns[i].state != State::Session {
            return;
        }
        self.sessions -= 1;
        let member = self.conns[i].member;
        let now = self.now_us;
        self.save_resumable(i);
        let mut left: heapless::Vec<u16, 256> = heapless::Vec::new();
        self.rooms.leave_all(i as u32, now, |h, _| {
            let _ = left.push(h);
        });
        // Leave the session state before telling others, so nothing is queued to it.
        self.conns[i].state = State::Closing;
        for &h in &left {
            self.forget_membership(i, h);
            let msg = Message::MemberLeft(MemberLeft {
                member,
                reason: why,
            });
            self.broadcast(h, None, &msg);
        }
        let c = &mut self.conns[i];
        c.rooms.clear();
        for k in c.keyframes.drain(..) {
            self.pool.release(k.block);
        }
        if self.member_slot[member as usize] == i as u32 + 1 {
            self.member_slot[member as usize] = 0;
        }
        for c in self.conns.iter_mut() {
            c.resync_set(i as u32, false);
        }
        log::debug!("session {member} ended");
    }

    /// Keeps what a resume restores, for the room grace period, in the slot of
    /// the record that expires first.
    fn save_resumable(&mut self, i: usize) {
        let c = &self.conns[i];
        let Some(r) = self.resumable.iter_mut().min_by_key(|r| r.until_us) else {
            return;
        };
        r.id = c.resume_id;
        r.user.clone_from(&c.user);
        r.member = c.member;
        r.until_us = self.now_us + self.cfg.room_grace_ms * 1000;
        r.audio.clear();
        r.audio.extend(
            c.rooms
                .iter()
                .filter_map(|m| m.audio_last.map(|a| (m.handle, a))),
        );
    }

    /// Closes the socket now and frees the slot.
    fn teardown(&mut self, i: usize, why: LeaveReason) {
        if self.conns[i].state == State::Free {
            return;
        }
        self.end_session(i, why);
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = self.registry.deregister(&mut s);
        }
        c.release_all(&mut self.pool);
        c.state = State::Free;
        c.rx_len = 0;
        c.ctrl_head = 0;
        c.ctrl_tail = 0;
        self.open -= 1;
        self.free_slots.push(i as u32);
    }

    // ---- time ------------------------------------------------------------------

    fn housekeeping(&mut self) {
        let now = self.now_us;
        let hb = self.cfg.heartbeat_ms * 1000;
        let handshake = self.cfg.handshake_timeout_ms * 1000;
        let stuck = self.cfg.stuck_timeout_ms * 1000;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            match c.state {
                State::Free => continue,
                State::Http if now.saturating_sub(c.opened_us) > handshake => {
                    self.stats.count_fault(Fault::HandshakeTimeout);
                    log::debug!("connection {i} ({}): no HTTP request in time", c.peer);
                    self.teardown(i, LeaveReason::TimedOut);
                    continue;
                }
                State::AwaitHello if now.saturating_sub(c.opened_us) > handshake => {
                    self.stats.count_fault(Fault::HandshakeTimeout);
                    let r = reason(format_args!(
                        "no hello within {} ms of connecting; send the hello first",
                        self.cfg.handshake_timeout_ms
                    ));
                    log::warn!("connection {i} ({}): {r}", c.peer);
                    self.send_error(i, ErrorCode::UNAUTHENTICATED, 0, &r);
                    self.close(i, APP_CLOSE_BASE + ErrorCode::UNAUTHENTICATED.0, "no hello");
                    continue;
                }
                State::Closing if now >= c.close_deadline_us => {
                    self.teardown(i, LeaveReason::Disconnected);
                    continue;
                }
                _ => {}
            }
            let c = &self.conns[i];
            if c.has_output() && c.want_write && now.saturating_sub(c.last_progress_us) > stuck {
                self.stats.count_fault(Fault::SlowConsumer);
                self.stats.count_error(ErrorCode::SLOW_CONSUMER);
                log::warn!(
                    "connection {i} ({}): accepted no bytes for {} ms; closing it as a slow consumer",
                    c.peer,
                    self.cfg.stuck_timeout_ms
                );
                self.teardown(i, LeaveReason::TimedOut);
                continue;
            }
            if c.state != State::Session {
                continue;
            }
            if now.saturating_sub(c.last_rx_us) > 3 * hb {
                self.stats.count_fault(Fault::HeartbeatTimeout);
                log::warn!(
                    "connection {i} ({}): silent for {} ms (3 heartbeats); closing",
                    c.peer,
                    now.saturating_sub(c.last_rx_us) / 1000
                );
                self.send_error(
                    i,
                    ErrorCode::GOING_AWAY,
                    0,
                    "no traffic for 3 heartbeat intervals",
                );
                self.close_as(
                    i,
                    close_code::GOING_AWAY,
                    "heartbeat timeout",
                    LeaveReason::TimedOut,
                );
                let c = &mut self.conns[i];
                c.close_deadline_us = now; // do not linger for a silent peer
                continue;
            }
            if now.saturating_sub(c.last_ping_us) >= hb {
                self.conns[i].last_ping_us = now;
                if !self.push_ctrl_frame(i, FrameKind::Ping, &now.to_le_bytes()) {
                    self.overflowed(i);
                    continue;
                }
                self.mark_dirty(i);
            }
            // Acknowledge relayed audio, one ack per room per tick.
            for k in 0..self.conns[i].rooms.len() {
                let m = &mut self.conns[i].rooms[k];
                if let Some(seq) = m.ack_pending.take() {
                    let h = m.handle;
                    let ack = Message::Ack(Ack {
                        kind: Kind::Audio as u8,
                        seq,
                    });
                    self.send_control(i, h, &ack);
                }
            }
        }
        if now >= self.next_sample_us {
            self.next_sample_us = now + SAMPLE_US;
            self.sample_system();
        }
        let expired = self.rooms.expire(now);
        if expired > 0 {
            self.stats.rooms_expired += expired as u64;
            log::debug!("{expired} empty rooms expired");
        }
    }

    /// Samples the process and the board into the monitor and logs any alert
    /// newly raised (the monitor logs it; nothing here allocates).
    fn sample_system(&mut self) {
        let now = self.now_us;
        let Ok(snap) = self.system.sample(now);
        let queued = self.conns.iter().map(|c| c.data.len()).sum();
        let m = &mut self.stats.monitor;
        m.record_system(
            now,
            snap.process_cpu_percent,
            snap.process_rss_bytes,
            snap.soc_temperature_c,
        );
        m.record_queue_depth(queued);
        m.check_alerts(now).for_each(drop);
        let dt = (now.saturating_sub(self.last_sample_us)).max(1) as f64 / 1e6;
        self.last_sample_us = now;
        for rc in self.room_counts.iter_mut() {
            rc.fps = (rc.poses - rc.poses_at_sample) as f64 / dt;
            rc.poses_at_sample = rc.poses;
        }
    }

    /// Closes every connection with "going away", waiting up to a second for the
    /// close frames to be written.
    fn shutdown(&mut self, poll: &mut Poll, events: &mut Events) {
        log::info!("hub shutting down: closing {} connections", self.open);
        for i in 0..self.conns.len() {
            match self.conns[i].state {
                State::Free | State::Closing => {}
                State::Http => self.teardown(i, LeaveReason::Disconnected),
                State::AwaitHello | State::Session => {
                    self.send_error(
                        i,
                        ErrorCode::GOING_AWAY,
                        0,
                        "the hub is shutting down; reconnect later",
                    );
                    self.close(i, close_code::GOING_AWAY, "hub shutting down");
                }
            }
        }
        let deadline = self.now() + LINGER_US;
        self.now_us = self.now();
        self.flush_dirty();
        while self.open > 0 && self.now() < deadline {
            let _ = poll.poll(events, Some(Duration::from_millis(10)));
            self.now_us = self.now();
            for ev in events.iter() {
                if let Token(i) = ev.token()
                    && i < self.conns.len()
                {
                    if ev.is_writable() {
                        self.mark_dirty(i);
                    }
                    if ev.is_readable() || ev.is_read_closed() {
                        if let Some(c) = self.conns.get_mut(i) {
                            c.hup = ev.is_read_closed();
                        }
                        self.on_readable(i);
                    }
                }
            }
            self.flush_dirty();
        }
        for i in 0..self.conns.len() {
            self.teardown(i, LeaveReason::Disconnected);
        }
    }

    // ---- HTTP ------------------------------------------------------------------

    fn on_http_request(&mut self, i: usize, head_len: usize) {
        let sz = self.rx_size;
        match http::parse_request(&self.rx_arena[i * sz..i * sz + head_len]) {
            http::Request::Upgrade(response, json) => {
                if !self.push_ctrl_raw(i, &[&response]) {
                    return self.teardown(i, LeaveReason::Disconnected);
                }
                // Bytes after the request head are the first frames.
                let c = &mut self.conns[i];
                c.json = json;
                c.json_pose_seq = 0;
                c.json_audio_seq = 0;
                self.rx_arena[i * sz..(i + 1) * sz].copy_within(head_len..c.rx_len, 0);
                c.rx_len -= head_len;
                c.state = State::AwaitHello;
                c.opened_us = self.now_us;
                let now = self.now_us;
                c.msg_bucket =
                    TokenBucket::new(self.cfg.rate_messages, self.cfg.burst_messages, now);
                c.byte_bucket = TokenBucket::new(self.cfg.rate_bytes, self.cfg.burst_bytes, now);
                self.mark_dirty(i);
                if self.conns[i].rx_len > 0 {
                    self.parse_frames(i);
                }
                // More may have come right behind the request than was read.
                self.push_again(i);
            }
            http::Request::Healthz => {
                self.http_answer(i, 200, "OK", "text/plain; charset=utf-8", b"ok\n")
            }
            http::Request::Metrics if self.cfg.metrics => {
                let mut body = String::with_capacity(8 * 1024);
                metrics::render(&self.stats, &self.gauges(), self.now_us, &mut body);
                self.http_answer(
                    i,
                    200,
                    "OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.as_bytes(),
                );
            }
            http::Request::Asset(a) if self.cfg.viewer => {
                self.http_answer(i, 200, "OK", a.content_type, a.body.as_bytes())
            }
            http::Request::Rooms if self.cfg.metrics => {
                let body = self.rooms_json();
                self.http_answer(i, 200, "OK", "application/json", body.as_bytes());
            }
            http::Request::Report if self.cfg.metrics => {
                let body = self.stats.monitor.report_json(self.now_us);
                self.http_answer(i, 200, "OK", "application/json", body.as_bytes());
            }
            http::Request::Metrics
            | http::Request::Report
            | http::Request::Rooms
            | http::Request::Asset(_)
            | http::Request::NotFound => self
                .http_refuse(
                    i,
                    404,
                    "Not Found",
                    "This is a poselink hub: connect a WebSocket client, or open / (the rooms) or /view/ROOM in a browser, or GET /metrics, /report, /rooms or /healthz.",
                ),
            http::Request::Bad(why) => {
                log::warn!(
                    "connection {i} ({}): not a WebSocket upgrade: {why}",
                    self.conns[i].peer
                );
                let body = format!(
                    "This is a poselink hub; the request is not a WebSocket upgrade ({why}). Connect with a WebSocket client (RFC 6455).\n"
                );
                self.http_refuse(i, 400, "Bad Request", &body);
            }
        }
    }

    /// `GET /rooms`: every room with its member count, pose frames per second
    /// published into it (over the last second) and media dropped in it.
    fn rooms_json(&self) -> String {
        let rooms: Vec<serde_json::Value> = (1..=self.cfg.max_rooms as u16)
            .filter_map(|h| {
                let name = self.rooms.name(h)?;
                let rc = self.room_counts.get(h as usize)?;
                Some(serde_json::json!({
                    "name": name,
                    "members": self.rooms.members(h).len(),
                    "fps": (rc.fps * 10.0).round() / 10.0,
                    "drops": rc.drops,
                }))
            })
            .collect();
        serde_json::json!({ "rooms": rooms }).to_string()
    }

    fn http_refuse(&mut self, i: usize, status: u16, text: &str, body: &str) {
        if status != 404 {
            self.stats.count_fault(Fault::Http);
        }
        self.http_answer(
            i,
            status,
            text,
            "text/plain; charset=utf-8",
            body.as_bytes(),
        );
    }

    fn http_answer(&mut self, i: usize, status: u16, text: &str, ctype: &str, body: &[u8]) {
        let head = format!(
            "HTTP/1.1 {status} {text}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        // A metrics page larger than the control buffer is written directly, once:
        // the request is rare and the socket buffer is empty at this point.
        let queued = self.push_ctrl_raw(i, &[head.as_bytes(), body]);
        let c = &mut self.conns[i];
        if !queued && let Some(s) = c.stream.as_mut() {
            let _ = io::Write::write_all(s, head.as_bytes());
            let _ = io::Write::write_all(s, body);
        }
        c.state = State::Closing;
        c.close_when_flushed = true;
        c.close_deadline_us = self.now_us + LINGER_US;
        self.mark_dirty(i);
    }
}
