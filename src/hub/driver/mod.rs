//! The hub's driver: the only part of the hub that touches sockets, threads, the
//! clock or `/proc`. One thread, one `mio` loop, a slot table of sockets sized at
//! start-up (the token of a socket is its slot's index). It accepts connections,
//! reads each HTTP request head and answers it — the WebSocket upgrade
//! (tungstenite's handshake), `/healthz`, `/readyz`, `/metrics`, `/report`, `/rooms` and the
//! viewer's files, from what the core shows — and hands an upgraded connection
//! to the [`Core`], which decides everything else. From then on the driver only
//! moves bytes: it reads into the buffer the core lends and says how much came;
//! it writes what the core lends, one `writev` per connection per round, with
//! WRITABLE interest only while output waits; it acts on the core's events
//! (shut a write half, close a socket), runs its timers and hands it a system
//! sample once a second.
//!
//! Each iteration reads every ready socket (a bounded amount each before
//! turning to the others), then writes every connection with output, so that a
//! busy room costs a few system calls per receiver per iteration, not one per
//! message.
//!
//! - this file: the public face ([`Hub`], [`HubHandle`], [`HubReport`]), the
//!   loop, its timers and the shutdown;
//! - `sockets`: the slot table, accepting, reading, writing (through TLS when
//!   the hub has a certificate: `crate::tls`), the core's events;
//! - `cluster_access`: the broker link's TLS and credentials, its failures
//!   worded for the operator, the URL without its secrets for the log;
//! - `http`: a request head until the upgrade, and the pages;
//! - `web`: the browser front end's files.

mod cluster;
pub(super) mod cluster_access;
pub(super) mod http;
mod sockets;
mod web;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use poselink_hal::{Clock, LinuxStats, MonotonicClock, SystemStats};

use crate::token::TokenKey;

use super::HubConfig;
use super::core::{Closed, Core, LINGER_US};
use super::log_limit::{LogKind, LogLimiter};
use super::memory::{MemoryCeiling, resident_base};
use super::metrics::{Fault, HubStats};
use sockets::{Phase, Slot};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// The driver's own timers (HTTP deadlines) run this often, µs.
const TICK_US: u64 = 20_000;
/// How often the process and board are sampled into the core, µs.
const SAMPLE_US: u64 = 1_000_000;
/// The longest HTTP request head accepted.
const MAX_HTTP_HEAD: usize = 8 * 1024;
/// Socket slots beyond `max_connections`, for HTTP only: a hub whose every
/// connection slot holds a WebSocket session still answers `/healthz`,
/// `/readyz` and `/metrics`, and refuses an upgrade with a `503` and a reason
/// rather than a silent close. (An upgrade is refused by the core's table, which
/// has `max_connections` slots; these only carry requests that end in an answer.)
const HTTP_SPARE_SLOTS: usize = 4;

/// What the driver allocates at start-up for `cfg` (bytes, an upper bound),
/// the sockets it serves at most, and the largest HTTP answer one socket may
/// hold while writing it (a copy of the biggest page, or `/rooms` with every
/// room listed, or `/metrics`).
pub(crate) fn table_bytes(cfg: &HubConfig) -> (usize, usize, usize) {
    let sockets = cfg.max_connections + HTTP_SPARE_SLOTS;
    let per_socket = core::mem::size_of::<Slot>() + MAX_HTTP_HEAD + 5 * core::mem::size_of::<u32>();
    let tables = cluster::table_bytes(cfg)
        + sockets * per_socket
        + MAX_HTTP_HEAD
        + cfg.max_connections * core::mem::size_of::<u32>()
        + 1024 * core::mem::size_of::<mio::event::Event>();
    // `/rooms`: a name of up to 64 bytes and four numbers per room; `/metrics`
    // and `/report`: fixed sets of lines.
    let rooms = 64 + cfg.max_rooms * 192;
    let answer = 512 + web::largest().max(rooms).max(64 * 1024);
    (tables, sockets, answer)
}

/// Stops a running hub, or has it reload its TLS certificate, from any thread.
#[derive(Clone, Debug)]
pub struct HubHandle {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl HubHandle {
    /// Asks the hub to close every connection with "going away" and return.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Asks the hub to read its TLS certificate and key files again (what
    /// `poselink hub` does on SIGHUP). New connections get the new
    /// certificate; open ones keep theirs. A file that does not load is
    /// logged and the old certificate stays. The broker link's
    /// `cluster_ca_file`, `cluster_cert_file` and `cluster_key_file` are read
    /// again too, for its next connection to the broker (the open one stays).
    pub fn reload_tls(&self) {
        self.reload.store(true, Ordering::Release);
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
    driver: Driver,
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
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidInput, e);
        config.validate().map_err(|e| invalid(e.to_string()))?;
        let key = load_key(&config)?;
        let tls = load_tls(&config)?;
        let clock = MonotonicClock::new();
        let core = Core::new(&config, key, clock.now_us(), unix_us())
            .map_err(|e| invalid(e.to_string()))?;
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let registry = poll.registry().try_clone()?;
        let handle = HubHandle {
            stop: Arc::new(AtomicBool::new(false)),
            reload: Arc::new(AtomicBool::new(false)),
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
        let cluster = cluster::ClusterLink::start(&config, Arc::clone(&handle.waker))?;
        let now = clock.now_us();
        let sockets = config.max_connections + HTTP_SPARE_SLOTS;
        let driver = Driver {
            slots: (0..sockets).map(|_| Slot::new()).collect(),
            heads: vec![0u8; sockets * MAX_HTTP_HEAD].into_boxed_slice(),
            head_scratch: vec![0u8; MAX_HTTP_HEAD].into_boxed_slice(),
            free: (0..sockets as u32).rev().collect(),
            slot_of: vec![0u32; config.max_connections].into_boxed_slice(),
            open: 0,
            again: Vec::with_capacity(sockets),
            again_next: Vec::with_capacity(sockets),
            later: Vec::with_capacity(sockets),
            to_flush: Vec::with_capacity(sockets),
            system: LinuxStats::new(),
            next_sample_us: now,
            next_tick_us: now,
            log_limit: LogLimiter::new(),
            ceiling: MemoryCeiling::for_config(&config, tls.is_some(), resident_base()),
            core,
            cluster,
            clock,
            registry,
            tls,
            cfg: config,
        };
        Ok(Hub {
            poll,
            listener,
            addr,
            handle,
            driver,
        })
    }

    /// The most resident memory this hub can hold, computed from its
    /// configuration when it was bound (and logged when it starts).
    pub fn memory_ceiling(&self) -> MemoryCeiling {
        self.driver.ceiling
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
        let d = &mut self.driver;
        log::info!(
            "hub listening on {} ({}, max {} connections, {} rooms)",
            self.addr,
            if d.tls.is_some() {
                "TLS: wss:// and https://"
            } else {
                "plain: ws:// and http://"
            },
            d.cfg.max_connections,
            d.cfg.max_rooms
        );
        if d.ceiling.base == 0 {
            log::info!(
                "memory: {} (this system does not say what the process holds besides; add that)",
                d.ceiling
            );
        } else {
            log::info!("memory: {}", d.ceiling);
        }
        loop {
            let now = d.clock.now_us();
            let timeout = if d.again.is_empty() {
                Duration::from_micros(d.next_deadline().saturating_sub(now).max(1))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            let now = d.clock.now_us();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => d.accept_all(&self.listener, now),
                    WAKER => {}
                    Token(s) => d.on_ready(s, ev, now),
                }
            }
            d.read_again(now);
            d.cluster_in(now);
            d.flush_all();
            d.timers(d.clock.now_us());
            d.flush_all();
            d.cluster_out();
            if self.handle.reload.swap(false, Ordering::AcqRel) {
                d.reload_tls();
            }
            if self.handle.stop.load(Ordering::Acquire) {
                break;
            }
        }
        d.shutdown(&mut self.poll, &mut events);
        let thread_cpu = poselink_hal::clock::thread_cpu_us().map(Duration::from_micros);
        let stats = d.core.stats().clone();
        log::info!(
            "hub stopped: {} connections served, {} media messages delivered",
            stats.accepted,
            stats.delivered
        );
        Ok(HubReport { stats, thread_cpu })
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

/// The TLS server configuration from the certificate and key files, if set.
fn load_tls(cfg: &HubConfig) -> io::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => crate::tls::server_config(cert.as_ref(), key.as_ref())
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string())),
        _ => Ok(None),
    }
}

/// The Unix time, µs (for token expiry, in the core).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The loop's state: everything but the poller and the listener.
struct Driver {
    cfg: HubConfig,
    core: Core,
    /// The broker thread of a hub in a cluster.
    cluster: Option<cluster::ClusterLink>,
    clock: MonotonicClock,
    registry: Registry,
    /// The TLS configuration new connections get (None: plain ws://).
    tls: Option<Arc<rustls::ServerConfig>>,
    slots: Vec<Slot>,
    /// Request heads: a head read whole in one go is parsed where it was read,
    /// in `head_scratch` (one buffer for every socket); only a head that comes
    /// in pieces is kept in its slot's stretch of `heads`. That arena is
    /// allocated zeroed at start (the kernel maps its pages as they are first
    /// written), so a hub full of well-behaved clients keeps no resident page
    /// of it: the request's bytes never touch per-socket memory.
    heads: Box<[u8]>,
    head_scratch: Box<[u8]>,
    free: Vec<u32>,
    /// Core connection index → slot + 1 (0: none).
    slot_of: Box<[u32]>,
    /// Sockets open, in any phase.
    open: usize,
    again: Vec<u32>,
    again_next: Vec<u32>,
    /// Connections over their rate limits, read again at the next tick.
    later: Vec<u32>,
    to_flush: Vec<u32>,
    /// The most resident memory this hub can hold (stated at start, in `/metrics`).
    ceiling: MemoryCeiling,
    /// The process's CPU, memory and SoC temperature, sampled once a second
    /// into the core (allocation-free).
    system: LinuxStats,
    next_sample_us: u64,
    next_tick_us: u64,
    /// The warnings about sockets and HTTP requests, each kind a few lines per
    /// window (the core has its own for the connections it holds).
    log_limit: LogLimiter,
}

impl Driver {
    /// Reads the hub's certificate and key files again, and has the broker
    /// thread read the broker link's; either keeps its old ones if the new
    /// do not load.
    fn reload_tls(&mut self) {
        let cluster = self.cluster.as_ref().is_some_and(|l| l.reload_tls());
        if self.tls.is_none() {
            if !cluster {
                log::warn!(
                    "TLS reload asked, but this hub has no tls_cert/tls_key and no broker link's TLS: nothing to reload"
                );
            }
            return;
        }
        match load_tls(&self.cfg) {
            Ok(Some(cfg)) => {
                self.tls = Some(cfg);
                log::info!(
                    "TLS certificate reloaded from {}; new connections use it, open ones keep theirs",
                    self.cfg.tls_cert.as_deref().unwrap_or("?")
                );
            }
            Ok(None) => {}
            Err(e) => log::error!("TLS reload failed, the previous certificate stays: {e}"),
        }
    }

    /// The earliest of the core's deadline and the driver's timers.
    fn next_deadline(&self) -> u64 {
        let core = self.core.poll_timeout().unwrap_or(u64::MAX);
        core.min(self.next_tick_us).min(self.next_sample_us)
    }

    /// The core's timers, the driver's HTTP deadlines, and the system sample.
    fn timers(&mut self, now: u64) {
        if self.core.poll_timeout().is_some_and(|t| now >= t) {
            self.core.handle_timeout(now);
            self.drain_events();
        }
        if now >= self.next_tick_us {
            self.next_tick_us = now + TICK_US;
            self.log_limit.flush_to_log(now);
            self.release_later();
            let handshake = self.cfg.handshake_timeout_ms * 1000;
            for s in 0..self.slots.len() {
                let slot = &self.slots[s];
                match slot.phase {
                    Phase::Http if now > slot.deadline_us => {
                        self.core.stats_mut().count_fault(Fault::HandshakeTimeout);
                        log::debug!(
                            "socket {s} ({}): no HTTP request within {} ms",
                            slot.peer,
                            handshake / 1000
                        );
                        self.close_slot(s);
                    }
                    Phase::Answer if now >= slot.deadline_us => self.close_slot(s),
                    _ => {}
                }
            }
        }
        if now >= self.next_sample_us {
            self.next_sample_us = now + SAMPLE_US;
            let Ok(sample) = self.system.sample(now);
            self.core.handle_system_sample(now, &sample);
            self.core.handle_wall_clock(now, unix_us());
        }
    }

    /// Closes every connection with "going away", waiting up to a second for the
    /// close frames to be written.
    /// What came from the broker, into the core (bounded per turn).
    fn cluster_in(&mut self, now: u64) {
        let Some(link) = self.cluster.as_mut() else {
            return;
        };
        link.begin(&mut self.core, now);
        for _ in 0..cluster::ClusterLink::PER_TURN {
            let Some(link) = self.cluster.as_mut() else {
                return;
            };
            match link.receive_one(&mut self.core, now) {
                None => return,
                Some(true) => self.flush_all(),
                Some(false) => {}
            }
        }
        if let Some(link) = self.cluster.as_ref() {
            link.more();
        }
    }

    /// What the core has for the broker, into the rings.
    fn cluster_out(&mut self) {
        if let Some(link) = self.cluster.as_mut() {
            link.send(&mut self.core);
        }
    }

    fn shutdown(&mut self, poll: &mut Poll, events: &mut Events) {
        log::info!("hub shutting down: closing {} sockets", self.open);
        for s in 0..self.slots.len() {
            if self.slots[s].phase == Phase::Http {
                self.close_slot(s);
            }
        }
        let now = self.clock.now_us();
        self.core.handle_shutdown(now);
        // The other hubs hear of it at once (their members' `member_left`).
        self.cluster_out();
        if let Some(link) = self.cluster.as_mut() {
            link.stop();
        }
        self.drain_events();
        let deadline = now + LINGER_US;
        self.flush_all();
        while self.open > 0 && self.clock.now_us() < deadline {
            let _ = poll.poll(events, Some(Duration::from_millis(10)));
            let now = self.clock.now_us();
            for ev in events.iter() {
                if let Token(s) = ev.token()
                    && s < self.slots.len()
                {
                    self.on_ready(s, ev, now);
                }
            }
            self.flush_all();
        }
        let now = self.clock.now_us();
        for s in 0..self.slots.len() {
            if let Phase::Ws(c) = self.slots[s].phase {
                self.core.handle_closed(now, c, Closed::Peer);
            }
            self.close_slot(s);
        }
    }
}
