//! The engine's IO driver: the one `mio` loop of the engine's thread, and the
//! only part of the engine that touches a socket or the clock. It connects when
//! the session asks ([`Transport::Connect`]), to the hub of the list the session
//! names (failover is the session's decision), puts TLS on the socket for a
//! `wss://` hub, runs tungstenite's client handshake over the non-blocking
//! stream, reads into the session's receive
//! buffer, writes what the session lends, and gives the [`EngineCore`] the time.
//! It decides nothing about the protocol. Before it sleeps it tells the app's
//! threads until when ([`EngineCore::park`]), as the timer will really fire.
//! `epoll`'s own timeout is whole milliseconds, rounded up, which would hold a
//! frame paced on the capture rate half a millisecond on average: on Linux
//! the loop sleeps on a `timerfd` armed for the µs instead ([`PreciseTimer`]),
//! with `epoll`'s timeout as a back-up a millisecond later.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use poselink_hal::{Clock, LinuxStats, MonotonicClock, SystemStats};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};

use crate::client::Transport;
use crate::tls::{Stream, TlsError, TlsLink};

use super::EngineReport;
use super::core::{EngineCore, SAMPLE_US};
use super::metrics::Counter;
use super::url::HubUrl;

pub(super) const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
const TIMER: Token = Token(2);
/// The resolution of `epoll_wait`'s timeout (mio rounds a timeout up to it), µs.
const POLL_RESOLUTION_US: u64 = 1_000;
/// The kernel's default timer slack for a normal thread, µs: a timed sleep
/// may end this much after its time.
const TIMER_SLACK_US: u64 = 50;

/// What a step of tungstenite's client handshake gives.
type Handshaken = Result<
    (
        tungstenite::WebSocket<Stream<TcpStream>>,
        tungstenite::handshake::client::Response,
    ),
    HandshakeError<ClientHandshake<Stream<TcpStream>>>,
>;

/// The connection, as far as it got.
enum Conn {
    None,
    /// TCP connect in progress.
    Connecting(TcpStream),
    /// The TLS handshake (for `wss://`) and the upgrade request are under
    /// way; waiting for the `101`.
    Upgrading(MidHandshake<ClientHandshake<Stream<TcpStream>>>),
    /// Upgraded: the session's bytes flow.
    Open(Stream<TcpStream>),
}

/// The loop's µs timer: hal's `timerfd`, registered with the poll, and the
/// time it is armed for.
#[cfg(target_os = "linux")]
struct PreciseTimer(poselink_hal::TimerFd, Option<u64>);

#[cfg(target_os = "linux")]
impl PreciseTimer {
    fn new(registry: &mio::Registry) -> io::Result<PreciseTimer> {
        use std::os::fd::AsRawFd;
        let timer = poselink_hal::TimerFd::new()?;
        let fd = timer.as_raw_fd();
        registry.register(&mut mio::unix::SourceFd(&fd), TIMER, Interest::READABLE)?;
        Ok(PreciseTimer(timer, None))
    }

    /// Fires at `at_us` (µs of the engine's clock, still to come); `false` if
    /// it could not be armed. Armed for that time already (the loop woke
    /// early, for a socket or a frame), it is left alone: that arming has not
    /// fired, since its time is still to come, and this spares the system call.
    fn arm(&mut self, at_us: u64) -> bool {
        if self.1 == Some(at_us) {
            return true;
        }
        let ok = self.0.arm_at_us(at_us).is_ok();
        self.1 = ok.then_some(at_us);
        ok
    }
}

/// Where `epoll`'s timeout is all there is: no timer of its own.
#[cfg(not(target_os = "linux"))]
struct PreciseTimer;

#[cfg(not(target_os = "linux"))]
impl PreciseTimer {
    fn new(_: &mio::Registry) -> io::Result<PreciseTimer> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn arm(&mut self, _: u64) -> bool {
        false
    }
}

pub(super) struct Driver {
    core: EngineCore,
    /// The hubs, in failover order (at least one; parsed at start).
    urls: Vec<HubUrl>,
    /// The hub of the last connection attempt.
    hub: usize,
    /// For a `wss://` hub: the client configuration (roots read at start).
    tls: Option<Arc<rustls::ClientConfig>>,
    user_agent: String,
    poll: Poll,
    /// The µs timer of the loop's sleeps (`None` where there is none).
    timer: Option<PreciseTimer>,
    clock: MonotonicClock,
    conn: Conn,
    want_write: bool,
    /// The process and the board, sampled once a second for the core's
    /// monitor (allocation-free), when the config asks.
    system: Option<LinuxStats>,
    next_sample_us: u64,
    next_cpu_us: u64,
}

impl Driver {
    pub(super) fn new(
        core: EngineCore,
        urls: Vec<HubUrl>,
        tls: Option<Arc<rustls::ClientConfig>>,
        user_agent: String,
        poll: Poll,
        clock: MonotonicClock,
        system_stats: bool,
    ) -> Driver {
        let now = clock.now_us();
        let timer = PreciseTimer::new(poll.registry())
            .inspect_err(|e| log::info!("no µs timer ({e}): the loop sleeps in whole ms"))
            .ok();
        Driver {
            core,
            timer,
            urls,
            hub: 0,
            tls,
            user_agent,
            poll,
            clock,
            conn: Conn::None,
            want_write: false,
            system: system_stats.then(LinuxStats::new),
            next_sample_us: now,
            next_cpu_us: now,
        }
    }

    /// The OS's figures for the core: the thread's CPU time ten times a second
    /// (a reader computing CPU % per second sees at most a tenth of a second
    /// of aliasing), the process and the board once a second.
    fn sample(&mut self, now: u64) {
        if now >= self.next_cpu_us {
            self.next_cpu_us = now + SAMPLE_US / 10;
            if let Some(us) = poselink_hal::clock::thread_cpu_us() {
                self.core.handle_thread_cpu(us);
            }
        }
        if now >= self.next_sample_us {
            self.next_sample_us = now + SAMPLE_US;
            if let Some(Ok(snap)) = self.system.as_mut().map(|s| s.sample(now)) {
                self.core.handle_system_sample(now, &snap);
            }
        }
    }

    pub(super) fn run(&mut self) -> EngineReport {
        let mut events = Events::with_capacity(64);
        let mut stopping_since: Option<u64> = None;
        loop {
            let now = self.clock.now_us();
            let wake = self.core.next_wake(now);
            let ms = wake.saturating_sub(now).div_ceil(POLL_RESOLUTION_US);
            // With the µs timer, the loop wakes at `wake` (epoll's timeout, a
            // millisecond later, only backs it up); without, at the whole ms.
            let precise = self.timer.is_some() && wake > now;
            let until = if precise {
                wake + TIMER_SLACK_US
            } else {
                now + ms * POLL_RESOLUTION_US + TIMER_SLACK_US
            };
            let timeout = if !self.core.park(until) {
                Duration::ZERO
            } else if !precise {
                Duration::from_millis(ms)
            } else if self.timer.as_mut().is_some_and(|t| t.arm(wake)) {
                Duration::from_millis(ms + 1)
            } else {
                // The timer failed: whole milliseconds from now on. This once
                // a frame may wait up to a millisecond longer than the app's
                // threads were told.
                log::warn!("the loop's µs timer failed: it sleeps in whole ms from now on");
                self.timer = None;
                Duration::from_millis(ms)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("engine poll failed: {e}");
                break;
            }
            self.core.unpark();
            let now = self.clock.now_us();
            self.core.take_input(now);
            if self.core.stop_requested() {
                self.core.session.shutdown();
            }
            self.progress(now);
            self.sample(now);
            self.core.tick(now);
            self.transport(now);
            self.flush(now);
            if self.core.stop_requested() {
                let since = *stopping_since.get_or_insert(now);
                if self.core.drained()
                    || now.saturating_sub(since) > 1_000_000
                    || !self.core.session.is_connected()
                {
                    break;
                }
            }
        }
        self.core.session.close();
        self.flush(self.clock.now_us());
        self.close();
        let shared = self.core.shared();
        shared
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        shared.counters.set_connected(false);
        EngineReport {
            metrics: shared.counters.snapshot(),
            thread_cpu: poselink_hal::clock::thread_cpu_us().map(Duration::from_micros),
        }
    }

    /// Moves the connection along: connect, upgrade, read.
    fn progress(&mut self, now: u64) {
        match std::mem::replace(&mut self.conn, Conn::None) {
            Conn::None => {}
            Conn::Connecting(s) => match s.take_error() {
                Ok(Some(e)) | Err(e) => self.failed(now, &format!("cannot connect: {e}")),
                Ok(None) if s.peer_addr().is_err() => self.conn = Conn::Connecting(s),
                Ok(None) => self.upgrade(now, s),
            },
            Conn::Upgrading(mid) => self.handshake(now, mid.handshake()),
            Conn::Open(s) => {
                self.conn = Conn::Open(s);
                self.read(now);
            }
        }
    }

    /// The hub of the current connection attempt.
    fn url(&self) -> &HubUrl {
        &self.urls[self.hub]
    }

    fn upgrade(&mut self, now: u64, socket: TcpStream) {
        let stream = match &self.tls {
            None => Stream::Plain(socket),
            Some(cfg) => match TlsLink::client(Arc::clone(cfg), &self.url().host) {
                Ok(link) => Stream::tls(socket, link),
                Err(e) => return self.failed(now, &format!("TLS: {e}")),
            },
        };
        let url = format!("ws://{}{}", self.url().host_port, self.url().path);
        let mut request = match url.into_client_request() {
            Ok(r) => r,
            Err(e) => return self.failed(now, &format!("bad hub URL: {e}")),
        };
        if let Ok(ua) = self.user_agent.parse() {
            request.headers_mut().insert("User-Agent", ua);
        }
        match ClientHandshake::start(stream, request, None) {
            Ok(mid) => self.handshake(now, mid.handshake()),
            Err(e) => self.failed(now, &format!("the WebSocket upgrade failed: {e}")),
        }
    }

    fn handshake(&mut self, now: u64, r: Handshaken) {
        match r {
            // The hub says nothing between its 101 and our hello: nothing is
            // left in tungstenite's buffer.
            Ok((ws, _)) => {
                self.conn = Conn::Open(ws.into_inner());
                self.core.session.handle_connected(now);
                self.read(now);
            }
            Err(HandshakeError::Interrupted(mid)) => self.conn = Conn::Upgrading(mid),
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
                // The hub's answer says why (e.g. "this port speaks TLS").
                let body = resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_string())
                    .filter(|b| !b.is_empty())
                    .map(|b| format!(": {b}"))
                    .unwrap_or_default();
                self.failed(
                    now,
                    &format!(
                        "the hub refused the WebSocket upgrade: {}{body}",
                        resp.status()
                    ),
                )
            }
            Err(HandshakeError::Failure(tungstenite::Error::Io(e)))
                if e.get_ref().is_some_and(|r| r.is::<TlsError>()) =>
            {
                self.failed(now, &format!("TLS with {}: {e}", self.url().host_port))
            }
            Err(HandshakeError::Failure(e)) => {
                self.failed(now, &format!("the WebSocket upgrade failed: {e}"))
            }
        }
    }

    /// Reads what there is into the session, handing its events over as the
    /// receive buffer fills.
    fn read(&mut self, now: u64) {
        loop {
            let Conn::Open(s) = &mut self.conn else {
                return;
            };
            if self.core.session.receive_buffer().is_empty() {
                // Full of whole frames: hand them over, then read on.
                self.core.take_events(now);
                if self.core.session.receive_buffer().is_empty() {
                    return;
                }
                continue;
            }
            let buf = self.core.session.receive_buffer();
            match s.read(buf) {
                Ok(0) => {
                    self.core.take_events(now);
                    return self.failed(now, "the hub closed the connection");
                }
                Ok(n) => {
                    self.core.session.handle_received(now, n);
                    self.core.take_events(now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(now, &format!("read failed: {e}")),
            }
        }
    }

    /// Does what the session asks of the transport.
    fn transport(&mut self, now: u64) {
        while let Some(t) = self.core.session.poll_transport() {
            match t {
                Transport::Close => self.close(),
                Transport::Connect => self.connect(now),
            }
        }
    }

    fn connect(&mut self, now: u64) {
        self.close();
        let hub = self.core.session.hub() % self.urls.len();
        if hub != self.hub {
            log::info!(
                "connecting to hub {hub} ({}) instead of hub {} ({})",
                self.urls[hub].text,
                self.hub,
                self.urls[self.hub].text
            );
            self.hub = hub;
        }
        let addr = match self.url().resolve() {
            Ok(a) => a,
            Err(e) => return self.failed(now, &format!("cannot resolve the hub: {e}")),
        };
        let mut s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return self.failed(now, &format!("cannot connect to {addr}: {e}")),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut s, SOCKET, interest) {
            return self.failed(now, &format!("cannot register the socket: {e}"));
        }
        let _ = s.set_nodelay(true);
        self.want_write = true;
        self.conn = Conn::Connecting(s);
    }

    /// The transport failed: drop it and tell the session.
    fn failed(&mut self, now: u64, why: &str) {
        self.close();
        self.core.session.handle_disconnected(now, why);
    }

    fn close(&mut self) {
        match std::mem::replace(&mut self.conn, Conn::None) {
            Conn::Connecting(mut s) => {
                let _ = self.poll.registry().deregister(&mut s);
            }
            Conn::Open(mut s) => {
                s.close_tls();
                let _ = self.poll.registry().deregister(s.socket());
            }
            // Dropped: closing the descriptor takes it out of the poll.
            Conn::Upgrading(_) | Conn::None => {}
        }
    }

    /// Writes what the session lends until it is written or the socket is full;
    /// asks for WRITABLE only while output waits.
    fn flush(&mut self, now: u64) {
        let Conn::Open(s) = &mut self.conn else {
            return;
        };
        let shared = Arc::clone(self.core.shared());
        if let Err(e) = s.send_pending() {
            return self.failed(now, &format!("write failed: {e}"));
        }
        loop {
            let out = self.core.session.poll_transmit();
            if out.is_empty() {
                break;
            }
            match s.write(out) {
                Ok(0) => return self.failed(now, "the hub closed the connection"),
                Ok(n) => {
                    self.core.session.handle_written(n);
                    shared.counters.add(Counter::BytesSent, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(now, &format!("write failed: {e}")),
            }
        }
        let Conn::Open(s) = &mut self.conn else {
            return;
        };
        let want = self.core.session.transmit_pending() > 0 || s.pending();
        if want != self.want_write {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(s.socket(), SOCKET, interest)
                .is_ok()
            {
                self.want_write = want;
            }
        }
    }
}
