//! The pose-room load generator: the workload `poselink bench` and the relay bench
//! put on a hub, measured the same way every time. R rooms of M members; every
//! member is a real WebSocket connection that publishes one 33-landmark pose frame
//! (the real quantised encoder on the hal's synthetic motion) at F Hz, optionally a
//! 20 ms audio chunk (48 kHz mono PCM16) 50 times a second, and receives what the
//! other M − 1 members of its room publish. The members may all be on one hub,
//! or spread round robin over the hubs of a cluster
//! ([`LoadGen::connect_spread`]: member k of a room on hub k mod N).
//!
//! Every member speaks through the client library's sans-IO
//! [`Session`](crate::client::Session) — the engine's own client, so there is
//! one client implementation — set up for a load: frames encoded in place in
//! its transmit buffer, received frames parsed in place with only their
//! envelope read, no replay window and no pings.
//!
//! It is built to cost the machine as little as possible, so that what is measured
//! is the hub: a few threads (not one per member), each with one `mio` poll over
//! its share of the connections; sends paced by deadline per publisher
//! ([`Schedule`]: a sorted list of phases, one cursor); receives with reads of up
//! to 16 KiB straight into each session's buffer; every buffer allocated while
//! connecting, none while the load runs.
//!
//! Latency is end to end on one host: the publisher stamps each message's capture
//! timestamp with `CLOCK_MONOTONIC` right before encoding it, a receiver reads the
//! same clock right after the read that brought the message, and the difference
//! goes into a [`PreciseHistogram`]. Loss is counted against a fixed expectation:
//! every publisher sends exactly `round(D · F)` pose frames (and `round(D · 50)`
//! audio chunks), each owed to M − 1 receivers; a frame the generator could not
//! write (the hub stopped reading) is still owed, and so shows as loss.
//!
//! Sends are paced at the resolution of the poll's timeout (1 ms on Linux): each
//! period's frames go out in about `1000 / F` bursts, each frame stamped when it
//! is written, so the pacing resolution does not enter the latency.
//!
//! ```no_run
//! use std::time::Duration;
//! use poselink::loadgen::{LoadConfig, LoadGen};
//!
//! let addr = "127.0.0.1:7700".parse().unwrap();
//! let cfg = LoadConfig { rooms: 10, members: 4, hz: 60, duration: Duration::from_secs(10), ..LoadConfig::default() };
//! let mut load = LoadGen::connect(addr, &cfg)?; // every member connected, joined, waiting
//! let report = load.run()?; // the load, then the stragglers; connections stay open
//! println!("{} of {} delivered, p99 {} µs", report.delivered, report.expected, report.latency.quantile(0.99));
//! drop(load); // closes the connections
//! # Ok::<(), poselink::loadgen::LoadError>(())
//! ```

mod flood;
mod schedule;
mod setup;
mod worker;

pub use schedule::Schedule;

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use poselink_hal::{Clock, MonotonicClock};

use crate::monitor::PreciseHistogram;

use worker::{Command, Worker, WorkerMsg, WorkerReport};

/// Audio chunks per second when audio is on (20 ms each).
pub const AUDIO_HZ: u32 = 50;

/// The most connections one load may open.
pub const MAX_CONNECTIONS: usize = 60_000;

/// What load to put on a hub.
///
/// ```
/// use poselink::loadgen::LoadConfig;
/// let cfg = LoadConfig { rooms: 250, ..LoadConfig::default() };
/// assert_eq!((cfg.members, cfg.hz), (4, 60));
/// assert_eq!(cfg.connections(), 1000);
/// assert_eq!(cfg.expected(), 1000 * 600 * 3);
/// cfg.validate().unwrap();
/// ```
#[derive(Clone, derive_more::Debug, PartialEq)]
pub struct LoadConfig {
    /// Rooms (R). Default 10.
    pub rooms: usize,
    /// Members per room (M), each a connection that publishes and receives. Default 4.
    pub members: usize,
    /// Pose frames per second per member (F). Default 60.
    pub hz: u32,
    /// How long every member publishes (D). Default 10 s.
    pub duration: Duration,
    /// Also publish 20 ms audio chunks, 50 a second per member. Default off.
    pub audio: bool,
    /// Threads to spread the connections over; 0 chooses (one per 500
    /// connections, at most the number of CPUs). Default 0.
    pub threads: usize,
    /// Room names are this prefix and the room's number. Default `bench-`.
    pub room_prefix: String,
    /// The access token every member sends in its hello (empty for a `--dev` hub).
    #[debug("{:?}", crate::redact::text(token))]
    pub token: String,
    /// How long to wait for messages still in flight after the last send. Default 2 s.
    pub drain: Duration,
    /// Seed of the publishers' phases and motion. Default 1.
    pub seed: u64,
    /// TLS (`wss://`): the PEM certificate(s) of the CA to trust; None for
    /// plain `ws://`. Default None.
    pub tls_ca: Option<String>,
    /// Flooders beside the members: connections that say hello and then
    /// write pings as fast as they can for the whole run, to see what a flood
    /// costs the members' latency and how soon the hub closes a flooder. Plain
    /// `ws://` only. Default 0.
    pub flooders: usize,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            rooms: 10,
            members: 4,
            hz: 60,
            duration: Duration::from_secs(10),
            audio: false,
            threads: 0,
            room_prefix: "bench-".into(),
            token: String::new(),
            drain: Duration::from_secs(2),
            seed: 1,
            tls_ca: None,
            flooders: 0,
        }
    }
}

impl LoadConfig {
    /// Connections the load opens (R × M).
    pub fn connections(&self) -> usize {
        self.rooms.saturating_mul(self.members)
    }

    /// Pose frames each member publishes: `round(D · F)`.
    pub fn pose_frames(&self) -> u64 {
        (self.duration.as_secs_f64() * f64::from(self.hz)).round() as u64
    }

    /// Audio chunks each member publishes: `round(D · 50)` with audio, else 0.
    pub fn audio_chunks(&self) -> u64 {
        if self.audio {
            (self.duration.as_secs_f64() * f64::from(AUDIO_HZ)).round() as u64
        } else {
            0
        }
    }

    /// Deliveries owed: every message to the other M − 1 members of its room.
    pub fn expected(&self) -> u64 {
        self.connections() as u64
            * (self.members as u64).saturating_sub(1)
            * (self.pose_frames() + self.audio_chunks())
    }

    /// The threads the load runs on.
    pub fn thread_count(&self) -> usize {
        let n = self.connections().max(1);
        let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
        match self.threads {
            0 => n.div_ceil(500).clamp(1, cpus),
            t => t.min(n),
        }
    }

    /// Checks every setting; the error says which and why.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |s: String| Err(LoadError::new(LoadErrorKind::Config, s));
        if self.rooms == 0 {
            return bad("rooms must be at least 1".into());
        }
        if self.members < 2 {
            return bad(format!(
                "members must be at least 2 (got {}): a room of one has nobody to deliver to",
                self.members
            ));
        }
        if self.connections() > MAX_CONNECTIONS {
            return bad(format!(
                "{} rooms × {} members is {} connections; at most {MAX_CONNECTIONS}",
                self.rooms,
                self.members,
                self.connections()
            ));
        }
        if self.hz == 0 || self.hz > 1000 {
            return bad(format!("hz must be 1 to 1000 (got {})", self.hz));
        }
        if self.pose_frames() == 0 {
            return bad(format!(
                "a duration of {:?} at {} Hz publishes no frame; give at least one period",
                self.duration, self.hz
            ));
        }
        if self.duration > Duration::from_secs(24 * 3600) {
            return bad("duration must be at most 24 hours".into());
        }
        if self.flooders > 64 || (self.flooders > 0 && self.tls_ca.is_some()) {
            return bad("flooders: at most 64, on a plain ws:// hub".into());
        }
        Ok(())
    }
}

/// What went wrong, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// A setting is out of range.
    Config,
    /// A connection to the hub could not be made (nothing listening, refused).
    Connect,
    /// The WebSocket upgrade, the hello or the join failed.
    Handshake,
    /// The hub refused the hello or the join with an error message.
    Refused,
    /// A socket or thread error while running.
    Io,
    /// The load was already run on these connections.
    AlreadyRun,
}

/// An error of the load generator: its kind and a sentence to act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// What kind of failure.
    pub kind: LoadErrorKind,
    /// What happened, for a person.
    pub message: String,
}

impl LoadError {
    fn new(kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        LoadError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// What one load measured.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Connections (members).
    pub connections: usize,
    /// Threads the generator ran on.
    pub threads: usize,
    /// Pose frames published (all members).
    pub pose_sent: u64,
    /// Audio chunks published (all members).
    pub audio_sent: u64,
    /// Frames the generator could not write because the hub had stopped reading
    /// that connection (counted in `pose_sent`/`audio_sent` and owed all the same).
    pub unsent: u64,
    /// Bytes of the pose messages published (envelope, payload and CRC; no
    /// WebSocket header).
    pub pose_bytes: u64,
    /// Bytes of the audio messages published (as `pose_bytes`).
    pub audio_bytes: u64,
    /// Deliveries owed ([`LoadConfig::expected`]).
    pub expected: u64,
    /// Pose frames and audio chunks received from another member of the room.
    pub delivered: u64,
    /// Pose frames received (part of `delivered`).
    pub pose_delivered: u64,
    /// Media received from a room the receiver is not in, or from itself (a hub
    /// bug; not counted as delivered).
    pub misrouted: u64,
    /// Latency of every delivered message, publisher's write to receiver's read, µs.
    pub latency: Box<PreciseHistogram>,
    /// How late sends were against their deadline, µs (the generator's own lag).
    pub send_lag: Box<PreciseHistogram>,
    /// Error messages the hub sent during the load.
    pub hub_errors: u64,
    /// Connections that ended during the load (closed by the hub, or an IO error).
    pub connections_lost: u64,
    /// The first error message or lost connection, as a sentence.
    pub first_problem: Option<String>,
    /// CPU time the generator's threads used during the load (sending, receiving,
    /// waiting for stragglers), summed over its threads.
    pub cpu: Duration,
    /// Wall time from the first deadline to the end of the wait for stragglers.
    pub wall: Duration,
    /// Flooders that ran beside the load.
    pub flooders: usize,
    /// Flooders the hub closed during the run.
    pub flooders_closed: usize,
    /// The longest a flooder the hub closed stayed connected after it began.
    pub flooder_closed_after: Option<Duration>,
    /// Pings the flooders wrote.
    pub flood_messages: u64,
}

impl LoadReport {
    /// Deliveries owed but not made, as a fraction of those owed (0 to 1).
    pub fn loss(&self) -> f64 {
        if self.expected == 0 {
            0.0
        } else {
            self.expected.saturating_sub(self.delivered) as f64 / self.expected as f64
        }
    }

    /// Mean bytes of a pose message on the wire (envelope to CRC), 0 if none was sent.
    pub fn bytes_per_frame(&self) -> f64 {
        if self.pose_sent == 0 {
            0.0
        } else {
            self.pose_bytes as f64 / self.pose_sent as f64
        }
    }
}

/// A load, connected and waiting to run: every member has its WebSocket, its
/// member id and its room. Dropping it closes every connection.
pub struct LoadGen {
    cfg: LoadConfig,
    /// The hubs the members are spread over (one for a hub alone).
    addrs: Vec<SocketAddr>,
    commands: Vec<mpsc::Sender<Command>>,
    results: mpsc::Receiver<WorkerMsg>,
    threads: Vec<JoinHandle<()>>,
    ran: bool,
}

impl fmt::Debug for LoadGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadGen")
            .field("connections", &self.cfg.connections())
            .field("threads", &self.threads.len())
            .finish()
    }
}

impl LoadGen {
    /// Opens every member's connection to the hub at `addr` (WebSocket upgrade,
    /// hello, join), spread over [`LoadConfig::thread_count`] threads, and
    /// returns when all are ready — or the first failure.
    pub fn connect(addr: SocketAddr, cfg: &LoadConfig) -> Result<LoadGen, LoadError> {
        LoadGen::connect_spread(&[addr], cfg)
    }

    /// As [`connect`](Self::connect), with each room's members spread round
    /// robin over the hubs of a cluster at `addrs`: member k of a room
    /// connects to `addrs[k % addrs.len()]`, so with M ≥ N every room spans
    /// every hub, and with M ≤ N every member of a room is on a different hub
    /// (the worst case for the cluster link). Flooders go to the first hub.
    ///
    /// It returns when every member has joined its room on its own hub; that
    /// the hubs know each other's members is for the caller to wait for
    /// (`poselink bench --hubs` reads each hub's `/metrics`).
    pub fn connect_spread(addrs: &[SocketAddr], cfg: &LoadConfig) -> Result<LoadGen, LoadError> {
        cfg.validate()?;
        if addrs.is_empty() {
            return Err(LoadError::new(
                LoadErrorKind::Config,
                "no hub to connect to: give at least one address",
            ));
        }
        let n = cfg.connections();
        let t = cfg.thread_count();
        let (res_tx, results) = mpsc::channel();
        let mut load = LoadGen {
            cfg: cfg.clone(),
            addrs: addrs.to_vec(),
            commands: Vec::with_capacity(t),
            results,
            threads: Vec::with_capacity(t),
            ran: false,
        };
        for w in 0..t {
            let (cmd_tx, cmd_rx) = mpsc::channel();
            let range = (w * n / t)..((w + 1) * n / t);
            let (cfg, res_tx, addrs) = (cfg.clone(), res_tx.clone(), addrs.to_vec());
            let spawned = std::thread::Builder::new()
                .name(format!("poselink-load-{w}"))
                .spawn(move || Worker::main(&addrs, cfg, range, cmd_rx, res_tx));
            match spawned {
                Ok(h) => {
                    load.threads.push(h);
                    load.commands.push(cmd_tx);
                }
                Err(e) => {
                    return Err(LoadError::new(
                        LoadErrorKind::Io,
                        format!("cannot start a load thread: {e}"),
                    ));
                }
            }
        }
        drop(res_tx);
        let mut first_err = None;
        for _ in 0..t {
            match load.results.recv() {
                Ok(WorkerMsg::Ready(Ok(()))) => {}
                Ok(WorkerMsg::Ready(Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Ok(WorkerMsg::Done(_)) => unreachable!("no worker runs before the start"),
                Err(_) => {
                    first_err.get_or_insert(LoadError::new(
                        LoadErrorKind::Io,
                        "a load thread ended while connecting",
                    ));
                    break;
                }
            }
        }
        match first_err {
            None => Ok(load),
            Some(e) => Err(e), // dropping `load` stops the other threads
        }
    }

    /// The configuration the load was made with.
    pub fn config(&self) -> &LoadConfig {
        &self.cfg
    }

    /// Runs the load once: every publisher sends on its schedule from 50 ms from
    /// now, then the generator waits for messages in flight (up to
    /// [`LoadConfig::drain`]). The connections stay open until `self` is dropped,
    /// so a caller can read the hub's figures for exactly the load.
    pub fn run(&mut self) -> Result<LoadReport, LoadError> {
        if self.ran {
            return Err(LoadError::new(
                LoadErrorKind::AlreadyRun,
                "this load has run; connect again for another run",
            ));
        }
        self.ran = true;
        let flooders = match self.cfg.flooders {
            0 => None,
            n => Some(flood::Flooders::connect(self.addrs[0], n, &self.cfg.token)?),
        };
        let start_us = MonotonicClock::new().now_us() + 50_000;
        for c in &self.commands {
            c.send(Command::Start(start_us)).map_err(|_| {
                LoadError::new(LoadErrorKind::Io, "a load thread ended before the start")
            })?;
        }
        let mut reports: Vec<WorkerReport> = Vec::with_capacity(self.commands.len());
        for _ in 0..self.commands.len() {
            match self.results.recv() {
                Ok(WorkerMsg::Done(r)) => reports.push(*r),
                Ok(WorkerMsg::Ready(_)) => unreachable!("every worker was ready"),
                Err(_) => {
                    return Err(LoadError::new(
                        LoadErrorKind::Io,
                        "a load thread ended during the load (it panicked?)",
                    ));
                }
            }
        }
        let mut out = LoadReport {
            connections: self.cfg.connections(),
            threads: self.commands.len(),
            pose_sent: 0,
            audio_sent: 0,
            unsent: 0,
            pose_bytes: 0,
            audio_bytes: 0,
            expected: self.cfg.expected(),
            delivered: 0,
            pose_delivered: 0,
            misrouted: 0,
            latency: PreciseHistogram::boxed(),
            send_lag: PreciseHistogram::boxed(),
            hub_errors: 0,
            connections_lost: 0,
            first_problem: None,
            cpu: Duration::ZERO,
            wall: Duration::ZERO,
            flooders: self.cfg.flooders,
            flooders_closed: 0,
            flooder_closed_after: None,
            flood_messages: 0,
        };
        for f in flooders.map(flood::Flooders::finish).unwrap_or_default() {
            out.flood_messages += f.messages;
            if let Some(after) = f.closed_after {
                out.flooders_closed += 1;
                out.flooder_closed_after = out.flooder_closed_after.max(Some(after));
            }
        }
        for r in reports {
            out.pose_sent += r.pose_sent;
            out.audio_sent += r.audio_sent;
            out.unsent += r.unsent;
            out.pose_bytes += r.pose_bytes;
            out.audio_bytes += r.audio_bytes;
            out.delivered += r.delivered;
            out.pose_delivered += r.pose_delivered;
            out.misrouted += r.misrouted;
            out.latency.merge(&r.latency);
            out.send_lag.merge(&r.send_lag);
            out.hub_errors += r.hub_errors;
            out.connections_lost += r.connections_lost;
            if out.first_problem.is_none() {
                out.first_problem = r.first_problem;
            }
            out.cpu += Duration::from_micros(r.cpu_us);
            out.wall = out
                .wall
                .max(Duration::from_micros(r.end_us.saturating_sub(start_us)));
        }
        Ok(out)
    }
}

impl Drop for LoadGen {
    fn drop(&mut self) {
        for c in &self.commands {
            let _ = c.send(Command::Close);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{Hub, HubConfig};

    #[test]
    fn settings_are_checked() {
        let ok = LoadConfig::default();
        ok.validate().unwrap();
        assert_eq!(ok.expected(), 40 * 3 * 600);
        let with_audio = LoadConfig {
            audio: true,
            duration: Duration::from_millis(1500),
            ..LoadConfig::default()
        };
        assert_eq!(
            (with_audio.pose_frames(), with_audio.audio_chunks()),
            (90, 75)
        );
        let bad = [
            LoadConfig {
                rooms: 0,
                ..ok.clone()
            },
            LoadConfig {
                members: 1,
                ..ok.clone()
            },
            LoadConfig {
                hz: 0,
                ..ok.clone()
            },
            LoadConfig {
                rooms: 20_000,
                ..ok.clone()
            },
            LoadConfig {
                duration: Duration::from_millis(1),
                ..ok.clone()
            },
        ];
        for cfg in bad {
            let e = cfg.validate().unwrap_err();
            assert_eq!(e.kind, LoadErrorKind::Config, "{cfg:?}");
            assert!(!e.message.is_empty());
        }
        assert_eq!(
            LoadConfig {
                threads: 3,
                rooms: 1,
                members: 2,
                ..ok.clone()
            }
            .thread_count(),
            2,
            "never more threads than connections"
        );
    }

    #[test]
    fn a_load_through_a_real_hub_is_counted_exactly() {
        let (handle, addr, join) = Hub::spawn(HubConfig::local_dev()).unwrap();
        let cfg = LoadConfig {
            rooms: 3,
            members: 3,
            hz: 50,
            duration: Duration::from_secs(1),
            audio: true,
            threads: 2,
            ..LoadConfig::default()
        };
        let mut load = LoadGen::connect(addr, &cfg).unwrap();
        let r = load.run().unwrap();
        assert_eq!(
            load.run().unwrap_err().kind,
            LoadErrorKind::AlreadyRun,
            "one run per connection set"
        );
        drop(load);
        handle.shutdown();
        let hub = join.join().unwrap().unwrap();

        // 9 members × (50 pose + 50 audio) × 2 receivers.
        assert_eq!((r.connections, r.threads), (9, 2));
        assert_eq!((r.pose_sent, r.audio_sent), (450, 450));
        assert_eq!(r.expected, 1800);
        assert_eq!(r.delivered, 1800, "{r:?}");
        assert_eq!(r.pose_delivered, 900);
        assert_eq!(hub.stats.delivered, 1800, "the hub agrees");
        assert_eq!((r.unsent, r.misrouted, r.connections_lost), (0, 0, 0));
        assert_eq!(r.hub_errors, 0, "{:?}", r.first_problem);
        assert_eq!(r.loss(), 0.0);
        assert_eq!(r.latency.count(), 1800);
        assert!(r.latency.max() > 0 && r.latency.quantile(0.5) < 1_000_000);
        assert_eq!(r.send_lag.count(), 900);
        // Quantised pose frames of about 110 bytes; audio chunks of 1920 bytes of
        // PCM and about 20 of envelope and CRC.
        assert!((60.0..200.0).contains(&r.bytes_per_frame()));
        assert!((1930..1960).contains(&(r.audio_bytes / r.audio_sent)));
        assert!(r.cpu > Duration::ZERO);
        assert!(r.wall >= Duration::from_millis(900), "{:?}", r.wall);
    }

    /// Members spread over two hubs that are not joined: member k of a room
    /// on hub k mod 2, so only the members that share a hub hear each other
    /// (real sockets on 127.0.0.1; bounded by the run's 0.5 s and the drain).
    #[test]
    fn members_are_spread_round_robin_over_the_hubs() {
        let (ha, a, ja) = Hub::spawn(HubConfig::local_dev()).unwrap();
        let (hb, b, jb) = Hub::spawn(HubConfig::local_dev()).unwrap();
        let cfg = LoadConfig {
            rooms: 2,
            members: 3,
            hz: 20,
            duration: Duration::from_millis(500),
            drain: Duration::from_millis(300),
            ..LoadConfig::default()
        };
        let mut load = LoadGen::connect_spread(&[a, b], &cfg).unwrap();
        let r = load.run().unwrap();
        drop(load);
        ha.shutdown();
        hb.shutdown();
        let (sa, sb) = (ja.join().unwrap().unwrap(), jb.join().unwrap().unwrap());
        // Members 0 and 2 of each room on A, member 1 on B.
        assert_eq!(sa.stats.sessions_opened, 4);
        assert_eq!(sb.stats.sessions_opened, 2);
        // On A, 2 members × 10 frames × 1 receiver per room; B's member is alone.
        assert_eq!((sa.stats.delivered, sb.stats.delivered), (40, 0));
        assert_eq!(r.delivered, 40, "{r:?}");
        assert_eq!(r.expected, 2 * 3 * 2 * 10);
        assert_eq!(
            LoadGen::connect_spread(&[], &cfg).unwrap_err().kind,
            LoadErrorKind::Config
        );
    }

    /// Flooders beside a small load: the hub closes them, the members lose
    /// nothing (real sockets on 127.0.0.1; bounded by the run's 1.5 s).
    #[test]
    fn flooders_are_closed_and_the_members_lose_nothing() {
        let (handle, addr, join) = Hub::spawn(HubConfig::local_dev()).unwrap();
        let cfg = LoadConfig {
            rooms: 2,
            members: 2,
            hz: 30,
            duration: Duration::from_millis(1_500),
            drain: Duration::from_millis(500),
            flooders: 2,
            ..LoadConfig::default()
        };
        let mut load = LoadGen::connect(addr, &cfg).unwrap();
        let r = load.run().unwrap();
        drop(load);
        handle.shutdown();
        join.join().unwrap().unwrap();
        assert_eq!(r.flooders, 2);
        assert_eq!(r.flooders_closed, 2, "{r:?}");
        assert!(r.flood_messages > 0);
        assert_eq!(r.delivered, r.expected, "{r:?}");
    }

    #[test]
    fn a_refused_hello_is_a_refusal_with_the_hubs_reason() {
        let (handle, addr, join) = Hub::spawn(HubConfig {
            dev: false,
            secret: Some("a-secret-of-at-least-32-bytes-for-hs256".into()),
            ..HubConfig::local_dev()
        })
        .unwrap();
        let cfg = LoadConfig {
            rooms: 1,
            members: 2,
            token: "not-a-token".into(),
            ..LoadConfig::default()
        };
        let e = LoadGen::connect(addr, &cfg).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Refused, "{e}");
        assert!(e.message.contains("the hub refused the hello"), "{e}");
        handle.shutdown();
        join.join().unwrap().unwrap();

        // Nothing listening: a connect error naming the address.
        let e = LoadGen::connect(addr, &cfg).unwrap_err();
        assert_eq!(e.kind, LoadErrorKind::Connect, "{e}");
        assert!(e.message.contains(&addr.to_string()), "{e}");
    }
}
