//! The edge engine: what a capture app links. [`EdgeEngine::start`] allocates
//! every buffer and starts one thread running one `mio` loop that owns the
//! connection to the hub. The capture thread and an audio thread hand frames over
//! with [`EngineHandle::send_pose`] and [`EngineHandle::send_audio`]: a push into
//! a preallocated lock-free ring (crossbeam's `ArrayQueue`) and, if the loop is
//! asleep, one `mio::Waker` wake — no allocation, no lock, no waiting.
//!
//! The loop drains the rings into the send queue (priorities; a newer pose frame
//! of a room and person replaces an unsent older one; pose frames older than
//! `max_pose_age_ms` are dropped; every drop counted), lets the token bucket decide
//! what may leave (the bandwidth limit), encodes with the pose codec at send time
//! (so a thinned stream's deltas refer to what was actually sent), and writes
//! masked WebSocket frames through a bounded transmit buffer. Audio chunks stay in
//! a replay window until the hub acknowledges them and are sent again after a
//! reconnect. The connection is kept alive with pings, found dead within two
//! heartbeat intervals, and re-made with exponential backoff and jitter; after a
//! reconnect the engine resumes its session, rejoins every room with its role and
//! reports "room restored". Received pose and audio from the other members come
//! out of [`EngineHandle::poll_event`] as [`Event`]s.
//!
//! ```no_run
//! use poselink::engine::{EdgeEngine, EngineConfig, Priority};
//! use poselink::proto::{PoseFrame, Role};
//!
//! let cfg = EngineConfig { hub: "ws://127.0.0.1:7700/".into(), ..EngineConfig::default() };
//! let (engine, thread) = EdgeEngine::start(cfg)?;
//! let room = engine.join_room("studio-1", Role::Member).expect("joined");
//! let frame = PoseFrame::zeroed(); // from the pose estimator
//! engine.send_pose(&frame, room, Priority::NORMAL).expect("queued");
//! while let Some(event) = engine.poll_event() {
//!     println!("{event:?}");
//! }
//! engine.shutdown();
//! let report = thread.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

pub use crate::client::{AudioReplay, Backoff, readdress};

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use poselink_hal::{Clock, LinuxStats, MonotonicClock, SystemStats};

use crate::monitor::{Alert, MonitorConfig, PerformanceMonitor};
use crate::proto::{
    self, AudioChunk, Compressor, EncoderConfig, ErrorCode, Header, Hello, Join, Kind, Leave,
    LeaveReason, Message, NeedsKeyframe, Packet, Ping, PoseDecoder, PoseEncoder, PoseFrame, Role,
    encode_audio, encode_control,
};
use crate::queue::{Entry, EntryKind, Pushed, SendQueue};
use crate::rate::TokenBucket;
use crate::sync::{Media, MediaSync, SyncConfig};
use crate::ws::{self, FrameKind, Parsed};

/// An engine-local room identifier, stable across reconnects (the hub's room
/// handle may change when the connection is re-made).
pub type RoomId = u16;

/// Send priorities: higher goes first; when the queue is full the lowest goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority(pub u8);

impl Priority {
    /// Background data.
    pub const LOW: Priority = Priority(64);
    /// The default.
    pub const NORMAL: Priority = Priority(128);
    /// Latency-critical data.
    pub const HIGH: Priority = Priority(192);
}

/// The engine's settings; every capacity is decided here.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The hub's URL, `ws://host:port/` (TLS is left to a proxy).
    pub hub: String,
    /// The JWT for the hello (empty for a `--dev` hub).
    pub token: String,
    /// A name for the hub's logs.
    pub client: String,
    /// Rooms joined at once. Default 8.
    pub max_rooms: usize,
    /// Pose streams (persons) per room. Default 4.
    pub max_persons: usize,
    /// Pose frames the capture thread may hand over before the loop takes them
    /// (a newer frame then replaces the oldest). Default 64.
    pub pose_ring: usize,
    /// Audio chunks that may wait in the hand-over ring. Default 128.
    pub audio_ring: usize,
    /// Entries of the send queue (audio waits here while the connection is down).
    /// Default 192.
    pub queue_capacity: usize,
    /// Pose frames older than this when their turn comes are dropped, ms. Default 100.
    pub max_pose_age_ms: u64,
    /// Bytes per second the engine may send; 0 for no limit. Default 0.
    pub bandwidth_bytes_per_sec: u64,
    /// Ping interval, ms; no answer for two intervals means the connection is dead. Default 1000.
    pub heartbeat_ms: u64,
    /// Reconnect backoff, ms. Defaults 100 and 5000.
    pub reconnect_min_ms: u64,
    /// See `reconnect_min_ms`.
    pub reconnect_max_ms: u64,
    /// Time allowed to connect, upgrade and be welcomed, ms. Default 3000.
    pub connect_timeout_ms: u64,
    /// Audio kept for replay until acknowledged, ms of capture time. Default 2000.
    pub audio_window_ms: u64,
    /// Events that may wait for the app (beyond it the oldest are dropped, counted). Default 1024.
    pub events_capacity: usize,
    /// How long `join_room` waits for the hub's answer, ms. Default 5000.
    pub join_timeout_ms: u64,
    /// The pose codec's settings.
    pub encoder: EncoderConfig,
    /// Pose decoders kept for received streams. Default 64.
    pub decoders: usize,
    /// Received pose and audio are held this long and released in capture-time
    /// order per sender (an audio jitter buffer, with the poses aligned to it), ms.
    /// Media that arrives after its play-out time is then dropped and reported as
    /// [`Event::AudioGap`] (real-time playback). 0 (the default) hands every
    /// frame and chunk out as it arrives, once and in order, nothing dropped for
    /// lateness (recording, analysis). 60 suits playback on a LAN.
    pub playout_delay_ms: u64,
    /// Senders whose media is aligned at once (each holds about 45 KB). Default 16.
    pub max_senders: usize,
    /// The performance monitor's windows and alert thresholds (see
    /// [`EngineHandle::performance_report`]). Default: ten one-second slots;
    /// alerts at 90 % CPU (of one core, the whole process), 64 MiB memory growth,
    /// a 250 ms p99 round trip to the hub and an 80 °C SoC; no fps floor (set
    /// `fps_below` to the capture rate to be told when sending falls behind it).
    pub monitor: MonitorConfig,
    /// Sample the process's CPU and memory and the board's temperature once a
    /// second into the monitor (Linux `/proc` and `/sys`). Default true.
    pub system_stats: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hub: "ws://127.0.0.1:7700/".into(),
            token: String::new(),
            client: concat!("poselink-engine/", env!("CARGO_PKG_VERSION")).into(),
            max_rooms: 8,
            max_persons: 4,
            pose_ring: 64,
            audio_ring: 128,
            // Two seconds of 20 ms audio chunks plus a pose frame per stream: audio
            // submitted while the connection is down waits here.
            queue_capacity: 192,
            max_pose_age_ms: 100,
            bandwidth_bytes_per_sec: 0,
            heartbeat_ms: 1000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5000,
            connect_timeout_ms: 3000,
            audio_window_ms: 2000,
            events_capacity: 1024,
            join_timeout_ms: 5000,
            encoder: EncoderConfig::default(),
            decoders: 64,
            playout_delay_ms: 0,
            max_senders: 16,
            monitor: MonitorConfig {
                cpu_percent: Some(90.0),
                memory_growth_bytes: Some(64 << 20),
                latency_p99_us: Some(250_000),
                soc_temp_c: Some(80.0),
                ..MonitorConfig::default()
            },
            system_stats: true,
        }
    }
}

/// Why a frame was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The frame is invalid (not finite, out of range, bad audio shape).
    Invalid(proto::Error),
    /// The audio hand-over ring is full: the engine's loop is not keeping up.
    RingFull,
    /// The engine has shut down.
    ShutDown,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::Invalid(e) => write!(f, "invalid frame: {e}"),
            SendError::RingFull => f.write_str(
                "the audio hand-over ring is full: the engine is not keeping up; raise audio_ring or send less",
            ),
            SendError::ShutDown => f.write_str("the engine has shut down"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why a join failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinError {
    /// The hub refused: its error code and reason.
    Refused {
        /// The protocol error code.
        code: ErrorCode,
        /// The hub's sentence.
        reason: String,
    },
    /// No answer within `join_timeout_ms` (not connected, or the hub is slow).
    Timeout,
    /// `max_rooms` rooms are joined already.
    TooManyRooms,
    /// The room name is not valid.
    BadName,
    /// The engine has shut down.
    ShutDown,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            JoinError::Refused { code, reason } => {
                write!(f, "the hub refused the join ({}): {reason}", code.name())
            }
            JoinError::Timeout => f.write_str(
                "no answer from the hub in time: check the hub address and that it is running",
            ),
            JoinError::TooManyRooms => {
                f.write_str("max_rooms rooms are joined already; leave one first")
            }
            JoinError::BadName => {
                f.write_str("invalid room name: use 1 to 64 bytes of letters, digits and `-_.:@/`")
            }
            JoinError::ShutDown => f.write_str("the engine has shut down"),
        }
    }
}

impl std::error::Error for JoinError {}

/// One member of a room, as a snapshot lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSummary {
    /// The hub-assigned member id.
    pub member: u16,
    /// The member's role.
    pub role: Role,
    /// The member's user id.
    pub user: String,
}

/// What happened, for the app.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The session is open.
    Connected {
        /// Our member id.
        member: u16,
    },
    /// The connection was lost or closed.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// A reconnect is scheduled.
    Reconnecting {
        /// 1 for the first attempt after a loss.
        attempt: u32,
        /// The wait before it.
        delay: Duration,
    },
    /// A room was joined (its members listed).
    RoomJoined {
        /// The room.
        room: RoomId,
        /// The members, us included.
        members: Vec<MemberSummary>,
    },
    /// A room was joined again after a reconnect.
    RoomRestored {
        /// The room.
        room: RoomId,
        /// The members now.
        members: Vec<MemberSummary>,
    },
    /// We left a room, were kicked, or it was closed.
    RoomLeft {
        /// The room.
        room: RoomId,
        /// Why.
        reason: LeaveReason,
    },
    /// Someone joined a room we are in.
    MemberJoined {
        /// The room.
        room: RoomId,
        /// Who.
        member: MemberSummary,
    },
    /// Someone left a room we are in.
    MemberLeft {
        /// The room.
        room: RoomId,
        /// Who.
        member: u16,
        /// Why.
        reason: LeaveReason,
    },
    /// A pose frame from another member.
    Pose {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The frame (capture time on the sender's clock).
        frame: Box<PoseFrame>,
    },
    /// An audio chunk that never came (or came too late to play): conceal it.
    AudioGap {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The missing chunk's sequence number.
        seq: u32,
    },
    /// An audio chunk from another member.
    Audio {
        /// The room.
        room: RoomId,
        /// The publisher's member id.
        sender: u16,
        /// The chunk.
        chunk: Box<AudioChunk>,
    },
    /// Audio chunks that left the replay window unacknowledged (lost if the
    /// connection was down).
    AudioLost {
        /// The room.
        room: RoomId,
        /// How many.
        count: u64,
    },
    /// A performance alert: a monitored value crossed its threshold (raised
    /// once per crossing; see [`EngineConfig::monitor`]).
    Alert(Alert),
    /// The hub reported an error.
    Error {
        /// The code.
        code: ErrorCode,
        /// The hub's sentence.
        reason: String,
    },
}

/// The engine's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    /// Whether a session is open now.
    pub connected: bool,
    /// Pose frames handed over by the app.
    pub poses_submitted: u64,
    /// Audio chunks handed over by the app.
    pub audio_submitted: u64,
    /// Pose frames written to the socket.
    pub poses_sent: u64,
    /// Audio chunks written (first sends and replays).
    pub audio_sent: u64,
    /// Audio chunks sent again after a reconnect.
    pub audio_replayed: u64,
    /// Bytes written to the socket.
    pub bytes_sent: u64,
    /// Bytes of the pose messages sent (protocol messages, without the
    /// WebSocket framing): `pose_bytes_sent / poses_sent` is the size of a frame
    /// on the wire.
    pub pose_bytes_sent: u64,
    /// Pose frames replaced in the hand-over ring (the loop was behind).
    pub drops_ring: u64,
    /// Pose frames replaced by a newer one in the send queue.
    pub drops_superseded: u64,
    /// Entries evicted by higher priorities.
    pub drops_evicted: u64,
    /// Entries refused by a full queue of higher priorities.
    pub drops_refused: u64,
    /// Pose frames dropped for age (the network or the bandwidth limit could not carry them).
    pub drops_stale: u64,
    /// Frames for a room not joined.
    pub drops_no_room: u64,
    /// Audio chunks that left the replay window unacknowledged.
    pub audio_lost: u64,
    /// Events dropped because the app did not take them.
    pub events_dropped: u64,
    /// Protocol messages received from the hub, and their bytes (without the
    /// WebSocket framing).
    pub messages_received: u64,
    /// See `messages_received`.
    pub bytes_received: u64,
    /// Pose frames received and decoded.
    pub poses_received: u64,
    /// Audio chunks received.
    pub audio_received: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// The last round trip to the hub, µs.
    pub rtt_us: u64,
    /// CPU time the engine's thread has used, µs (updated ten times a second;
    /// 0 where the platform cannot tell).
    pub thread_cpu_us: u64,
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    poses_submitted: AtomicU64,
    audio_submitted: AtomicU64,
    poses_sent: AtomicU64,
    audio_sent: AtomicU64,
    audio_replayed: AtomicU64,
    bytes_sent: AtomicU64,
    pose_bytes_sent: AtomicU64,
    drops_ring: AtomicU64,
    drops_superseded: AtomicU64,
    drops_evicted: AtomicU64,
    drops_refused: AtomicU64,
    drops_stale: AtomicU64,
    drops_no_room: AtomicU64,
    audio_lost: AtomicU64,
    events_dropped: AtomicU64,
    messages_received: AtomicU64,
    bytes_received: AtomicU64,
    poses_received: AtomicU64,
    audio_received: AtomicU64,
    reconnects: AtomicU64,
    rtt_us: AtomicU64,
    thread_cpu_us: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct PoseSubmit {
    frame: PoseFrame,
    room: RoomId,
    priority: u8,
}

struct AudioSubmit {
    chunk: AudioChunk,
    room: RoomId,
    priority: u8,
}

enum Command {
    Join {
        name: String,
        role: Role,
        reply: mpsc::SyncSender<Result<RoomId, JoinError>>,
    },
    Leave(RoomId),
    Bandwidth(u64),
    Report(mpsc::SyncSender<PerformanceReport>),
}

/// The engine's performance monitor, as [`EngineHandle::performance_report`]
/// returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct PerformanceReport {
    /// Name → value, as [`PerformanceMonitor::get_performance_metrics`] lists them.
    pub metrics: Vec<(&'static str, f64)>,
    /// The JSON report of [`PerformanceMonitor::report_json`].
    pub json: String,
}

impl PerformanceReport {
    /// The value of one metric, if known.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.0 == name).map(|m| m.1)
    }
}

struct Shared {
    poses: ArrayQueue<PoseSubmit>,
    audio: ArrayQueue<AudioSubmit>,
    commands: ArrayQueue<Command>,
    events: ArrayQueue<Event>,
    waker: Waker,
    wake_pending: AtomicBool,
    stop: AtomicBool,
    stopped: AtomicBool,
    counters: Counters,
    join_timeout: Duration,
}

impl Shared {
    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }
}

/// The app's side of a running engine; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Hands a pose frame to the engine for `room`: validated, pushed into the
    /// lock-free ring, the loop woken. Never blocks and never allocates. If the
    /// loop has fallen behind and the ring is full, the oldest waiting frame is
    /// replaced (counted in `drops_ring`): a stale skeleton is worth nothing.
    pub fn send_pose(
        &self,
        frame: &PoseFrame,
        room: RoomId,
        priority: Priority,
    ) -> Result<(), SendError> {
        let s = &*self.shared;
        if s.stopped.load(Ordering::Relaxed) {
            return Err(SendError::ShutDown);
        }
        frame.validate().map_err(SendError::Invalid)?;
        bump(&s.counters.poses_submitted, 1);
        let item = PoseSubmit {
            frame: *frame,
            room,
            priority: priority.0,
        };
        if s.poses.force_push(item).is_some() {
            bump(&s.counters.drops_ring, 1);
        }
        s.wake();
        Ok(())
    }

    /// Hands an audio chunk to the engine for `room`; like [`send_pose`](Self::send_pose),
    /// but audio is never replaced: a full ring is an error the app sees.
    pub fn send_audio(
        &self,
        chunk: &AudioChunk,
        room: RoomId,
        priority: Priority,
    ) -> Result<(), SendError> {
        let s = &*self.shared;
        if s.stopped.load(Ordering::Relaxed) {
            return Err(SendError::ShutDown);
        }
        chunk.validate().map_err(SendError::Invalid)?;
        let item = AudioSubmit {
            chunk: *chunk,
            room,
            priority: priority.0,
        };
        if s.audio.push(item).is_err() {
            return Err(SendError::RingFull);
        }
        bump(&s.counters.audio_submitted, 1);
        s.wake();
        Ok(())
    }

    /// Joins `room` with `role` (the seed's `join_room`), waiting for the hub's
    /// answer up to `join_timeout_ms`. The engine rejoins it after every
    /// reconnect until [`leave_room`](Self::leave_room).
    pub fn join_room(&self, room: &str, role: Role) -> Result<RoomId, JoinError> {
        proto::validate_name(room, "room name").map_err(|_| JoinError::BadName)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let cmd = Command::Join {
            name: room.to_string(),
            role,
            reply: tx,
        };
        self.command(cmd).map_err(|_| JoinError::ShutDown)?;
        match rx.recv_timeout(self.shared.join_timeout + Duration::from_millis(200)) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(JoinError::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(JoinError::ShutDown),
        }
    }

    /// Leaves a room (and stops rejoining it).
    pub fn leave_room(&self, room: RoomId) {
        let _ = self.command(Command::Leave(room));
    }

    /// Limits what the engine sends to `bytes_per_sec` (0: no limit). When the
    /// limit cannot carry the frame rate, pose frames are thinned (the newest
    /// waits, older ones are replaced or age out), never queued into latency.
    pub fn set_bandwidth_limit(&self, bytes_per_sec: u64) {
        let _ = self.command(Command::Bandwidth(bytes_per_sec));
    }

    /// The performance monitor's view of the last ten seconds, asked of the
    /// engine's loop (waits for its answer, at most `join_timeout_ms`; `None` if
    /// the engine has stopped). What it measures: `latency_*` is the round trip
    /// to the hub (the heartbeat pings); `fps` pose frames sent;
    /// `msgs_out`/`bytes_out` everything written, `msgs_in`/`bytes_in` everything
    /// received; `queue_depth` the send queue; drops by kind (`ring`,
    /// `superseded`, `evicted`, `refused`, `stale`, `no_room`, `audio_lost`);
    /// errors by the hub's error code names; reconnects; and, with
    /// [`EngineConfig::system_stats`], the process's CPU and memory and the SoC
    /// temperature. Builds the report, so it allocates: call it now and then
    /// (say once a second), not per frame.
    pub fn performance_report(&self) -> Option<PerformanceReport> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Report(tx)).ok()?;
        rx.recv_timeout(self.shared.join_timeout).ok()
    }

    fn command(&self, cmd: Command) -> Result<(), ()> {
        let s = &*self.shared;
        if s.stopped.load(Ordering::Relaxed) {
            return Err(());
        }
        // Control is rare: a full command ring means a stuck loop; wait a little.
        let mut cmd = cmd;
        for _ in 0..1000 {
            match s.commands.push(cmd) {
                Ok(()) => {
                    s.wake();
                    return Ok(());
                }
                Err(c) => {
                    cmd = c;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        Err(())
    }

    /// The next event, if one is waiting.
    pub fn poll_event(&self) -> Option<Event> {
        self.shared.events.pop()
    }

    /// Every event waiting now, oldest first (the seed's `events()`); a loop over
    /// it never blocks.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        std::iter::from_fn(|| self.shared.events.pop())
    }

    /// The next event, waiting up to `timeout` for one.
    pub fn wait_event(&self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.shared.events.pop() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> EngineMetrics {
        let c = &self.shared.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineMetrics {
            connected: c.connected.load(Ordering::Relaxed),
            poses_submitted: g(&c.poses_submitted),
            audio_submitted: g(&c.audio_submitted),
            poses_sent: g(&c.poses_sent),
            audio_sent: g(&c.audio_sent),
            audio_replayed: g(&c.audio_replayed),
            bytes_sent: g(&c.bytes_sent),
            pose_bytes_sent: g(&c.pose_bytes_sent),
            drops_ring: g(&c.drops_ring),
            drops_superseded: g(&c.drops_superseded),
            drops_evicted: g(&c.drops_evicted),
            drops_refused: g(&c.drops_refused),
            drops_stale: g(&c.drops_stale),
            drops_no_room: g(&c.drops_no_room),
            audio_lost: g(&c.audio_lost),
            events_dropped: g(&c.events_dropped),
            messages_received: g(&c.messages_received),
            bytes_received: g(&c.bytes_received),
            poses_received: g(&c.poses_received),
            audio_received: g(&c.audio_received),
            reconnects: g(&c.reconnects),
            rtt_us: g(&c.rtt_us),
            thread_cpu_us: g(&c.thread_cpu_us),
        }
    }

    /// Stops the engine: what is queued is sent, unacknowledged audio is given up
    /// to a second to be acknowledged, the connection is closed normally. Join the
    /// thread from [`EdgeEngine::start`] to wait for it.
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.waker.wake();
    }
}

/// What the engine's thread returns.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineReport {
    /// The counters at the end.
    pub metrics: EngineMetrics,
    /// CPU time of the engine's thread.
    pub thread_cpu: Option<Duration>,
}

/// The engine's constructor.
#[derive(Debug)]
pub struct EdgeEngine;

impl EdgeEngine {
    /// Allocates everything and starts the loop on a thread named `poselink-engine`.
    pub fn start(config: EngineConfig) -> io::Result<(EngineHandle, JoinHandle<EngineReport>)> {
        let target = HubUrl::parse(&config.hub)?;
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            poses: ArrayQueue::new(config.pose_ring.max(1)),
            audio: ArrayQueue::new(config.audio_ring.max(1)),
            commands: ArrayQueue::new(64),
            events: ArrayQueue::new(config.events_capacity.max(16)),
            waker,
            wake_pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            counters: Counters::default(),
            join_timeout: Duration::from_millis(config.join_timeout_ms),
        });
        let mut engine = Loop::new(config, target, Arc::clone(&shared), poll);
        let thread = std::thread::Builder::new()
            .name("poselink-engine".into())
            .spawn(move || engine.run())?;
        Ok((EngineHandle { shared }, thread))
    }
}

// ---- the loop ---------------------------------------------------------------------

const WAKER: Token = Token(0);
const SOCKET: Token = Token(1);
/// Bytes waiting in the transmit buffer above which the send queue is not drained:
/// beyond this, the queue's drop rules decide, not a growing backlog.
const TX_WATERMARK: usize = 16 * 1024;
/// How often the system is sampled into the monitor (and alerts checked), µs.
const SAMPLE_US: u64 = 1_000_000;
const TX_CAPACITY: usize = 128 * 1024;
const RX_CAPACITY: usize = 96 * 1024;
const MAX_PAYLOAD: usize = proto::MAX_MESSAGE_LEN;

struct HubUrl {
    host_port: String,
    host: String,
    path: String,
}

impl HubUrl {
    fn parse(url: &str) -> io::Result<HubUrl> {
        let bad = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("hub URL {url:?}: {why}"),
            )
        };
        let rest = url.strip_prefix("ws://").ok_or_else(|| {
            bad("must start with ws:// (for TLS, put a proxy in front of the hub)")
        })?;
        let (host_port, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host_port.is_empty() {
            return Err(bad("no host"));
        }
        let host_port = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_string()
        } else {
            format!("{host_port}:7700")
        };
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port.as_str(), |(h, _)| h)
            .to_string();
        Ok(HubUrl {
            host_port,
            host,
            path: path.to_string(),
        })
    }

    fn resolve(&self) -> io::Result<SocketAddr> {
        self.host_port.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} did not resolve", self.host_port),
            )
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No connection; the next attempt at `retry_at_us`.
    Down,
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent; waiting for `101`.
    Upgrading,
    /// Hello sent; waiting for the welcome.
    Hello,
    /// Session open.
    Ready,
}

/// One item of the send queue, kept in a slab (the queue holds its index).
// Stored in place on purpose: boxing the audio variant would allocate per chunk.
#[allow(clippy::large_enum_variant)]
enum Item {
    Free,
    Pose(PoseFrame),
    Audio(AudioChunk),
}

struct RoomSlot {
    in_use: bool,
    name: String,
    role: Role,
    /// The hub's handle while joined in this connection.
    handle: Option<u16>,
    /// Joined at least once (a later snapshot is a restore).
    joined_once: bool,
    reply: Option<mpsc::SyncSender<Result<RoomId, JoinError>>>,
    reply_deadline_us: u64,
    /// (person, encoder) per pose stream.
    encoders: Vec<(u32, PoseEncoder)>,
    replay: AudioReplay,
}

/// A receive-side pose stream.
struct RxStream {
    room: RoomId,
    sender: u16,
    person: u32,
    decoder: PoseDecoder,
    used_us: u64,
    /// A needs_keyframe was sent for the current outage.
    asked: bool,
}

/// Audio chunks and pose frames one sender's aligner holds.
const SYNC_AUDIO: usize = 16;
const SYNC_POSES: usize = 16;

/// One sender's media on its way out to the app, in capture-time order.
struct SenderSync {
    room: RoomId,
    sender: u16,
    sync: Box<MediaSync<SYNC_AUDIO, SYNC_POSES>>,
    used_us: u64,
    in_use: bool,
}

struct Loop {
    cfg: EngineConfig,
    url: HubUrl,
    shared: Arc<Shared>,
    poll: Poll,
    clock: MonotonicClock,
    rng: u64,

    phase: Phase,
    stream: Option<TcpStream>,
    retry_at_us: u64,
    phase_deadline_us: u64,
    ws_key: String,
    backoff: Backoff,
    member: u16,
    resume: u64,
    connections: u64,
    want_write: bool,
    last_rx_us: u64,
    last_ping_us: u64,
    ctrl_seq: u32,

    rx: Box<[u8]>,
    rx_len: usize,
    tx: Box<[u8]>,
    tx_head: usize,
    tx_tail: usize,
    scratch: Box<[u8]>,
    decompress: Box<[u8]>,

    rooms: Vec<RoomSlot>,
    queue: SendQueue<u16>,
    slab: Vec<Item>,
    free: Vec<u16>,
    bucket: Option<TokenBucket>,
    /// Bytes sent beyond what the bucket held (a frame larger than the estimate).
    bw_debt: u64,
    /// Stale entries a pop hands back (capacity: the queue's).
    stale: Vec<u16>,
    /// Rooms whose join was sent and not answered, oldest first (the hub answers
    /// joins in order; an error does not name the room).
    pending_joins: std::collections::VecDeque<usize>,
    replay_spare: Option<AudioReplay>,
    compressor: Compressor,
    rx_streams: Vec<RxStream>,
    /// (room, publisher identity, last audio seq) for duplicate detection. The
    /// identity is the hash of the member's user id where known (stable across
    /// the publisher's reconnects, when its member id changes), else its member id.
    rx_audio: Vec<(RoomId, u64, u32)>,
    /// (room, member id, user id hash) of the members of joined rooms.
    members: Vec<(RoomId, u16, u64)>,
    /// Per-sender aligners (allocated at start-up, reused).
    syncs: Vec<SenderSync>,
    monitor: PerformanceMonitor,
    /// Sampled into the monitor once a second (allocation-free).
    system: Option<LinuxStats>,
    next_sample_us: u64,
    next_cpu_us: u64,
    /// Ring drops (counted on the app's thread) already given to the monitor.
    ring_drops_seen: u64,
}

impl Loop {
    fn new(cfg: EngineConfig, url: HubUrl, shared: Arc<Shared>, poll: Poll) -> Loop {
        let clock = MonotonicClock::new();
        let now = clock.now_us();
        let slots = cfg.queue_capacity.max(1);
        let window_us = cfg.audio_window_ms * 1000;
        // 20 ms chunks over the window, with room for shorter ones.
        let replay_cap = (cfg.audio_window_ms / 10).max(16) as usize;
        let rooms = (0..cfg.max_rooms)
            .map(|_| RoomSlot {
                in_use: false,
                name: String::with_capacity(proto::MAX_NAME_LEN),
                role: Role::Member,
                handle: None,
                joined_once: false,
                reply: None,
                reply_deadline_us: 0,
                encoders: Vec::with_capacity(cfg.max_persons),
                replay: AudioReplay::new(replay_cap, window_us),
            })
            .collect();
        let seed = now ^ (Arc::as_ptr(&shared) as u64).rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15;
        Loop {
            backoff: Backoff::new(cfg.reconnect_min_ms * 1000, cfg.reconnect_max_ms * 1000),
            bucket: (cfg.bandwidth_bytes_per_sec > 0)
                .then(|| bucket_for(cfg.bandwidth_bytes_per_sec, now)),
            queue: SendQueue::new(slots, cfg.max_pose_age_ms * 1000),
            // One slot more than the queue: a push into a full queue needs the
            // newcomer's slot before the queue says which entry it evicts.
            slab: (0..=slots).map(|_| Item::Free).collect(),
            bw_debt: 0,
            replay_spare: Some(AudioReplay::new(1, 0)),
            stale: Vec::with_capacity(slots),
            pending_joins: std::collections::VecDeque::with_capacity(cfg.max_rooms),
            free: (0..=slots as u16).rev().collect(),
            rx_streams: Vec::with_capacity(cfg.decoders),
            rx_audio: Vec::with_capacity(cfg.decoders),
            members: Vec::with_capacity(cfg.max_rooms * 64),
            syncs: (0..if cfg.playout_delay_ms > 0 {
                cfg.max_senders
            } else {
                0
            })
                .map(|_| SenderSync {
                    room: 0,
                    sender: 0,
                    sync: Box::new(MediaSync::new(SyncConfig {
                        delay_us: cfg.playout_delay_ms * 1000,
                        ..SyncConfig::DEFAULT
                    })),
                    used_us: 0,
                    in_use: false,
                })
                .collect(),
            compressor: Compressor::new(cfg.encoder.compress_threshold),
            monitor: PerformanceMonitor::new(cfg.monitor.clone()),
            system: cfg.system_stats.then(LinuxStats::new),
            next_sample_us: now,
            next_cpu_us: now,
            ring_drops_seen: 0,
            rooms,
            url,
            shared,
            poll,
            clock,
            rng: seed | 1,
            phase: Phase::Down,
            stream: None,
            retry_at_us: now,
            phase_deadline_us: 0,
            ws_key: String::new(),
            member: 0,
            resume: 0,
            connections: 0,
            want_write: false,
            last_rx_us: now,
            last_ping_us: now,
            ctrl_seq: 0,
            rx: vec![0u8; RX_CAPACITY].into_boxed_slice(),
            rx_len: 0,
            tx: vec![0u8; TX_CAPACITY].into_boxed_slice(),
            tx_head: 0,
            tx_tail: 0,
            scratch: vec![0u8; MAX_PAYLOAD + 64].into_boxed_slice(),
            decompress: vec![0u8; 16 * 1024].into_boxed_slice(),
            cfg,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_us()
    }

    fn random(&mut self) -> u32 {
        // xorshift64*: WebSocket masks and backoff jitter (not secrets).
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    fn emit(&self, e: Event) {
        let s = &self.shared;
        if s.events.force_push(e).is_some() {
            bump(&s.counters.events_dropped, 1);
        }
    }

    fn run(&mut self) -> EngineReport {
        let mut events = Events::with_capacity(64);
        let mut stopping_since: Option<u64> = None;
        loop {
            let now = self.now();
            let timeout = self.next_timeout(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                log::error!("engine poll failed: {e}");
                break;
            }
            let now = self.now();
            let mut sock_ready = false;
            for ev in events.iter() {
                if ev.token() == SOCKET {
                    sock_ready = true;
                }
            }
            self.shared.wake_pending.store(false, Ordering::Release);
            self.drain_commands(now);
            self.drain_rings(now);
            if sock_ready || self.phase != Phase::Down {
                self.on_socket(now);
            }
            self.timers(now);
            self.release_media(now);
            self.transmit(now);
            self.flush(now);
            if self.shared.stop.load(Ordering::Acquire) {
                let since = *stopping_since.get_or_insert(now);
                if self.drained()
                    || now.saturating_sub(since) > 1_000_000
                    || self.phase != Phase::Ready
                {
                    break;
                }
            }
        }
        self.close_session();
        self.shared.stopped.store(true, Ordering::Release);
        self.shared
            .counters
            .connected
            .store(false, Ordering::Relaxed);
        EngineReport {
            metrics: EngineHandle {
                shared: Arc::clone(&self.shared),
            }
            .metrics(),
            thread_cpu: poselink_hal::clock::thread_cpu_us().map(Duration::from_micros),
        }
    }

    /// Everything promised has left: the queue and rings are empty, the transmit
    /// buffer is written, and every audio chunk is acknowledged.
    fn drained(&self) -> bool {
        self.queue.is_empty()
            && self.shared.poses.is_empty()
            && self.shared.audio.is_empty()
            && self.tx_head == self.tx_tail
            && self.rooms.iter().all(|r| !r.in_use || r.replay.is_empty())
    }

    fn next_timeout(&mut self, now: u64) -> Duration {
        let mut until = now + 50_000;
        for s in self.syncs.iter().filter(|s| s.in_use) {
            if let Some(due) = s.sync.next_due_us() {
                until = until.min(due.max(now));
            }
        }
        if self.phase == Phase::Down {
            until = until.min(self.retry_at_us);
        } else if self.phase != Phase::Ready {
            until = until.min(self.phase_deadline_us);
        } else {
            until = until.min(self.last_ping_us + self.cfg.heartbeat_ms * 1000);
            if !self.queue.is_empty() && self.tx_tail - self.tx_head < TX_WATERMARK {
                let need = self.bw_debt + 128;
                let wait = match self.bucket.as_mut() {
                    Some(b) => b.wait_us(need, now).min(50_000),
                    None => 0,
                };
                until = until.min(now + wait);
            }
        }
        Duration::from_micros(until.saturating_sub(now))
    }

    // ---- the app's hand-over ------------------------------------------------------

    fn drain_commands(&mut self, now: u64) {
        while let Some(cmd) = self.shared.commands.pop() {
            match cmd {
                Command::Join { name, role, reply } => self.cmd_join(name, role, reply, now),
                Command::Leave(id) => self.cmd_leave(id),
                Command::Report(reply) => {
                    self.sample_system(now);
                    let _ = reply.try_send(PerformanceReport {
                        metrics: self.monitor.get_performance_metrics(now),
                        json: self.monitor.report_json(now),
                    });
                }
                Command::Bandwidth(bps) => {
                    self.bucket = (bps > 0).then(|| bucket_for(bps, now));
                    log::info!(
                        "bandwidth limit: {}",
                        if bps == 0 {
                            "none".to_string()
                        } else {
                            format!("{bps} bytes/s")
                        }
                    );
                }
            }
        }
    }

    fn cmd_join(
        &mut self,
        name: String,
        role: Role,
        reply: mpsc::SyncSender<Result<RoomId, JoinError>>,
        now: u64,
    ) {
        let id = match self.rooms.iter().position(|r| r.in_use && r.name == name) {
            Some(id) => id,
            None => match self.rooms.iter().position(|r| !r.in_use) {
                Some(id) => {
                    let r = &mut self.rooms[id];
                    r.in_use = true;
                    r.name.clear();
                    r.name.push_str(&name);
                    r.handle = None;
                    r.joined_once = false;
                    r.encoders.clear();
                    r.replay.clear();
                    id
                }
                None => {
                    let _ = reply.try_send(Err(JoinError::TooManyRooms));
                    return;
                }
            },
        };
        let r = &mut self.rooms[id];
        r.role = role;
        r.reply = Some(reply);
        r.reply_deadline_us = now + self.cfg.join_timeout_ms * 1000;
        if self.phase == Phase::Ready {
            self.send_join(id);
        }
    }

    fn cmd_leave(&mut self, id: RoomId) {
        let Some(r) = self.rooms.get_mut(id as usize).filter(|r| r.in_use) else {
            return;
        };
        r.in_use = false;
        r.handle = None;
        let name = std::mem::take(&mut r.name);
        if self.phase == Phase::Ready {
            self.send_control(0, &Message::Leave(Leave { room: &name }));
        }
        self.rooms[id as usize].name = name;
        self.emit(Event::RoomLeft {
            room: id,
            reason: LeaveReason::Left,
        });
    }

    fn drain_rings(&mut self, now: u64) {
        let s = Arc::clone(&self.shared);
        while let Some(p) = s.poses.pop() {
            let stream = p.frame.person;
            self.enqueue(
                Item::Pose(p.frame),
                EntryKind::Pose,
                p.room,
                stream,
                p.priority,
                now,
            );
        }
        while let Some(a) = s.audio.pop() {
            self.enqueue(
                Item::Audio(a.chunk),
                EntryKind::Audio,
                a.room,
                0,
                a.priority,
                now,
            );
        }
    }

    fn enqueue(
        &mut self,
        item: Item,
        kind: EntryKind,
        room: RoomId,
        stream: u32,
        priority: u8,
        now: u64,
    ) {
        let c = &self.shared.counters;
        if !self.rooms.get(room as usize).is_some_and(|r| r.in_use) {
            bump(&c.drops_no_room, 1);
            self.monitor.record_drop("no_room");
            return;
        }
        // The slab has a slot per queue entry; when the queue is full the push
        // below frees one, so take the slot only after making sure one is free.
        let Some(slot) = self.free.pop() else {
            bump(&c.drops_refused, 1);
            self.monitor.record_drop("refused");
            return;
        };
        self.slab[slot as usize] = item;
        let entry = Entry {
            item: slot,
            kind,
            priority,
            room,
            stream,
            queued_us: now,
        };
        match self.queue.push(entry) {
            Pushed::Queued => {}
            Pushed::Superseded(old) => {
                bump(&c.drops_superseded, 1);
                self.monitor.record_drop("superseded");
                self.release(old.item);
            }
            Pushed::Evicted(old) => {
                bump(&c.drops_evicted, 1);
                self.monitor.record_drop("evicted");
                self.release(old.item);
            }
            Pushed::Refused(e) => {
                bump(&c.drops_refused, 1);
                self.monitor.record_drop("refused");
                self.release(e.item);
            }
        }
    }

    fn release(&mut self, slot: u16) {
        self.slab[slot as usize] = Item::Free;
        self.free.push(slot);
    }

    // ---- sending ------------------------------------------------------------------

    /// Moves queued items into the transmit buffer while it is below its
    /// watermark and the bandwidth limit allows. Held while a room is being
    /// restored after a reconnect, so audio keeps its order.
    fn transmit(&mut self, now: u64) {
        if self.phase != Phase::Ready
            || self
                .rooms
                .iter()
                .any(|r| r.in_use && r.joined_once && r.handle.is_none())
        {
            return;
        }
        while self.tx_tail - self.tx_head < TX_WATERMARK {
            if let Some(b) = self.bucket.as_mut() {
                if b.available(now) < self.bw_debt + 128 {
                    return;
                }
                b.try_take(self.bw_debt, now);
                self.bw_debt = 0;
            }
            let mut stale = std::mem::take(&mut self.stale);
            let next = self.queue.pop_with(now, |e| stale.push(e.item));
            if !stale.is_empty() {
                bump(&self.shared.counters.drops_stale, stale.len() as u64);
                self.monitor.record_drops("stale", stale.len() as u64);
            }
            for &s in &stale {
                self.release(s);
            }
            stale.clear();
            self.stale = stale;
            let Some(entry) = next else {
                return;
            };
            self.send_item(entry, now);
        }
    }

    fn send_item(&mut self, entry: Entry<u16>, now: u64) {
        let item = std::mem::replace(&mut self.slab[entry.item as usize], Item::Free);
        self.free.push(entry.item);
        let id = entry.room as usize;
        let Some(handle) = self
            .rooms
            .get(id)
            .filter(|r| r.in_use)
            .and_then(|r| r.handle)
        else {
            // The room was left (or refused on rejoin) while this waited.
            bump(&self.shared.counters.drops_no_room, 1);
            self.monitor.record_drop("no_room");
            return;
        };
        let member = self.member;
        let mut scratch = std::mem::take(&mut self.scratch);
        let n = match &item {
            Item::Pose(frame) => {
                let r = &mut self.rooms[id];
                let person = frame.person;
                let k = match r.encoders.iter().position(|(p, _)| *p == person) {
                    Some(k) => k,
                    None if r.encoders.len() < self.cfg.max_persons => {
                        r.encoders
                            .push((person, PoseEncoder::new(self.cfg.encoder)));
                        r.encoders.len() - 1
                    }
                    None => {
                        self.scratch = scratch;
                        bump(&self.shared.counters.drops_refused, 1);
                        self.monitor.record_drop("refused");
                        return;
                    }
                };
                r.encoders[k].1.encode(frame, handle, member, &mut scratch)
            }
            Item::Audio(chunk) => {
                encode_audio(chunk, handle, member, &mut self.compressor, &mut scratch)
            }
            Item::Free => {
                self.scratch = scratch;
                return;
            }
        };
        match n {
            Ok(n) => {
                if let Some(b) = self.bucket.as_mut() {
                    // Charge what it really cost; what the bucket did not hold is
                    // owed before the next frame may go.
                    if !b.try_take(n as u64, now) {
                        let avail = b.available(now);
                        b.try_take(avail, now);
                        self.bw_debt += n as u64 - avail;
                    }
                }
                if self.queue_frame(FrameKind::Binary, &mut scratch[..n]) {
                    self.monitor.record_out(now, n);
                    match &item {
                        Item::Pose(_) => {
                            bump(&self.shared.counters.poses_sent, 1);
                            bump(&self.shared.counters.pose_bytes_sent, n as u64);
                            self.monitor.record_frame(now);
                        }
                        Item::Audio(chunk) => {
                            bump(&self.shared.counters.audio_sent, 1);
                            let lost = self.rooms[id].replay.push(
                                chunk.seq,
                                chunk.capture_ts_us,
                                &scratch[..n],
                            );
                            if lost > 0 {
                                bump(&self.shared.counters.audio_lost, lost as u64);
                                self.monitor.record_drops("audio_lost", lost as u64);
                                self.emit(Event::AudioLost {
                                    room: entry.room,
                                    count: lost as u64,
                                });
                            }
                        }
                        Item::Free => {}
                    }
                }
            }
            Err(e) => log::warn!("cannot encode a frame: {e}"),
        }
        self.scratch = scratch;
    }

    /// Appends a masked client frame carrying `payload` (masked in place, so the
    /// caller's copy is consumed) to the transmit buffer.
    fn queue_frame(&mut self, kind: FrameKind, payload: &mut [u8]) -> bool {
        let need = payload.len() + 14;
        if TX_CAPACITY - self.tx_tail < need && self.tx_head > 0 {
            self.tx.copy_within(self.tx_head..self.tx_tail, 0);
            self.tx_tail -= self.tx_head;
            self.tx_head = 0;
        }
        if TX_CAPACITY - self.tx_tail < need {
            log::warn!(
                "engine transmit buffer full; dropping a {}-byte frame",
                payload.len()
            );
            return false;
        }
        let mask = self.random().to_le_bytes();
        let Some(hl) = ws::write_client_header(
            &mut self.tx[self.tx_tail..],
            kind,
            true,
            payload.len(),
            mask,
        ) else {
            return false;
        };
        self.tx_tail += hl;
        let start = self.tx_tail;
        self.tx[start..start + payload.len()].copy_from_slice(payload);
        ws::mask_payload(&mut self.tx[start..start + payload.len()], mask);
        self.tx_tail += payload.len();
        true
    }

    fn send_control(&mut self, room: u16, msg: &Message<'_>) {
        self.ctrl_seq = self.ctrl_seq.wrapping_add(1);
        let h = Header::new(msg.kind(), room, self.member, self.ctrl_seq, self.now());
        let mut scratch = std::mem::take(&mut self.scratch);
        match encode_control(&h, msg, &mut scratch) {
            Ok(n) => {
                self.queue_frame(FrameKind::Binary, &mut scratch[..n]);
            }
            Err(e) => log::warn!("cannot encode a {} message: {e}", msg.kind().name()),
        }
        self.scratch = scratch;
    }

    fn flush(&mut self, now: u64) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        if matches!(self.phase, Phase::Down | Phase::Connecting) {
            return;
        }
        while self.tx_head < self.tx_tail {
            match stream.write(&self.tx[self.tx_head..self.tx_tail]) {
                Ok(0) => return self.lost("the hub closed the connection", now),
                Ok(n) => {
                    self.tx_head += n;
                    bump(&self.shared.counters.bytes_sent, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(&format!("write failed: {e}"), now),
            }
        }
        if self.tx_head == self.tx_tail {
            self.tx_head = 0;
            self.tx_tail = 0;
        }
        let want = self.tx_head < self.tx_tail;
        if want != self.want_write
            && let Some(s) = self.stream.as_mut()
        {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self.poll.registry().reregister(s, SOCKET, interest).is_ok() {
                self.want_write = want;
            }
        }
    }

    // ---- the connection -------------------------------------------------------------

    fn timers(&mut self, now: u64) {
        if now >= self.next_cpu_us {
            // Ten times a second: a reader computing CPU % per second sees
            // at most a tenth of a second of aliasing.
            self.next_cpu_us = now + SAMPLE_US / 10;
            if let Some(us) = poselink_hal::clock::thread_cpu_us() {
                let c = &self.shared.counters.thread_cpu_us;
                c.store(us, Ordering::Relaxed);
            }
        }
        if now >= self.next_sample_us {
            self.next_sample_us = now + SAMPLE_US;
            self.sample_system(now);
            for alert in self.monitor.check_alerts(now) {
                self.emit(Event::Alert(alert));
            }
        }
        match self.phase {
            Phase::Down if now >= self.retry_at_us && !self.shared.stop.load(Ordering::Relaxed) => {
                self.connect(now)
            }
            Phase::Connecting | Phase::Upgrading | Phase::Hello
                if now >= self.phase_deadline_us =>
            {
                self.lost("no session within connect_timeout_ms", now);
            }
            Phase::Ready => {
                let hb = self.cfg.heartbeat_ms * 1000;
                if now.saturating_sub(self.last_rx_us) > 2 * hb {
                    self.lost("no answer from the hub for two heartbeat intervals", now);
                    return;
                }
                if now.saturating_sub(self.last_ping_us) >= hb {
                    self.last_ping_us = now;
                    self.send_control(0, &Message::Ping(Ping { t0_us: now }));
                }
            }
            _ => {}
        }
        // Joins that got no answer in time.
        for id in 0..self.rooms.len() {
            let r = &mut self.rooms[id];
            if r.reply.is_some() && now >= r.reply_deadline_us {
                if let Some(tx) = r.reply.take() {
                    let _ = tx.try_send(Err(JoinError::Timeout));
                }
                if !r.joined_once {
                    r.in_use = false;
                }
            }
        }
    }

    /// Brings the process's CPU and memory, the send queue's depth and the app
    /// thread's ring drops into the monitor. Allocates nothing.
    fn sample_system(&mut self, now: u64) {
        if let Some(Ok(snap)) = self.system.as_mut().map(|s| s.sample(now)) {
            self.monitor.record_system(
                now,
                snap.process_cpu_percent,
                snap.process_rss_bytes,
                snap.soc_temperature_c,
            );
        }
        self.monitor.record_queue_depth(self.queue.len());
        let ring = self.shared.counters.drops_ring.load(Ordering::Relaxed);
        self.monitor
            .record_drops("ring", ring.saturating_sub(self.ring_drops_seen));
        self.ring_drops_seen = ring;
    }

    fn connect(&mut self, now: u64) {
        let addr = match self.url.resolve() {
            Ok(a) => a,
            Err(e) => return self.lost(&format!("cannot resolve the hub: {e}"), now),
        };
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    SOCKET,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    return self.lost(&format!("cannot register the socket: {e}"), now);
                }
                let _ = s.set_nodelay(true);
                self.stream = Some(s);
                self.want_write = true;
                self.phase = Phase::Connecting;
                self.phase_deadline_us = now + self.cfg.connect_timeout_ms * 1000;
                self.rx_len = 0;
                self.tx_head = 0;
                self.tx_tail = 0;
            }
            Err(e) => self.lost(&format!("cannot connect to {addr}: {e}"), now),
        }
    }

    /// The connection is gone: tell the app, forget per-connection state, and
    /// schedule the next attempt.
    fn lost(&mut self, why: &str, now: u64) {
        let was = self.phase;
        if let Some(mut s) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.phase = Phase::Down;
        self.want_write = false;
        self.tx_head = 0;
        self.tx_tail = 0;
        self.rx_len = 0;
        for r in self.rooms.iter_mut() {
            r.handle = None;
        }
        self.pending_joins.clear();
        self.bw_debt = 0;
        self.shared
            .counters
            .connected
            .store(false, Ordering::Relaxed);
        if was == Phase::Ready {
            log::warn!("connection to the hub lost: {why}");
            self.emit(Event::Disconnected {
                reason: why.to_string(),
            });
        } else {
            log::debug!("connecting to the hub failed: {why}");
        }
        let jitter = self.random();
        let delay = self.backoff.next_delay_us(jitter);
        self.retry_at_us = now + delay;
        if !self.shared.stop.load(Ordering::Relaxed) {
            self.emit(Event::Reconnecting {
                attempt: self.backoff.attempt(),
                delay: Duration::from_micros(delay),
            });
        }
    }

    fn on_socket(&mut self, now: u64) {
        if self.phase == Phase::Connecting {
            let Some(s) = self.stream.as_ref() else {
                return;
            };
            match s.take_error() {
                Ok(Some(e)) | Err(e) => return self.lost(&format!("cannot connect: {e}"), now),
                Ok(None) => {}
            }
            if s.peer_addr().is_err() {
                return; // not connected yet
            }
            self.start_upgrade(now);
        }
        if self.phase == Phase::Down {
            return;
        }
        // Read what there is.
        loop {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            if self.rx_len == self.rx.len() {
                break;
            }
            match s.read(&mut self.rx[self.rx_len..]) {
                Ok(0) => {
                    self.parse(now);
                    return self.lost("the hub closed the connection", now);
                }
                Ok(n) => {
                    self.rx_len += n;
                    self.last_rx_us = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.lost(&format!("read failed: {e}"), now),
            }
            self.parse(now);
            if self.phase == Phase::Down {
                return;
            }
        }
        self.parse(now);
    }

    fn start_upgrade(&mut self, now: u64) {
        let mut key_bytes = [0u8; 16];
        for chunk in key_bytes.chunks_mut(4) {
            chunk.copy_from_slice(&self.random().to_le_bytes());
        }
        self.ws_key = base64_16(&key_bytes);
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: {}\r\n\r\n",
            self.url.path, self.url.host, self.ws_key, self.cfg.client
        );
        self.tx[..req.len()].copy_from_slice(req.as_bytes());
        self.tx_head = 0;
        self.tx_tail = req.len();
        self.phase = Phase::Upgrading;
        self.flush(now);
    }

    fn parse(&mut self, now: u64) {
        if self.phase == Phase::Upgrading {
            let Some(end) = self.rx[..self.rx_len]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            else {
                if self.rx_len > 8192 {
                    self.lost("the hub's upgrade answer is too long", now);
                }
                return;
            };
            let head_len = end + 4;
            if let Err(why) = check_upgrade(&self.rx[..head_len], &self.ws_key) {
                return self.lost(&why, now);
            }
            self.rx.copy_within(head_len..self.rx_len, 0);
            self.rx_len -= head_len;
            self.phase = Phase::Hello;
            let token = std::mem::take(&mut self.cfg.token);
            let client = std::mem::take(&mut self.cfg.client);
            self.ctrl_seq = 0;
            self.member = 0;
            self.send_control(
                0,
                &Message::Hello(Hello {
                    minor: proto::PROTOCOL_MINOR,
                    token: &token,
                    resume: self.resume,
                    client: &client,
                }),
            );
            self.cfg.token = token;
            self.cfg.client = client;
        }
        let mut pos = 0;
        while matches!(self.phase, Phase::Hello | Phase::Ready) {
            let mut rx = std::mem::take(&mut self.rx);
            let frame = match ws::parse_server_frame(&mut rx[pos..self.rx_len], MAX_PAYLOAD) {
                Ok(Parsed::Frame(f)) => f,
                Ok(Parsed::Need(_)) => {
                    self.rx = rx;
                    break;
                }
                Err(e) => {
                    self.rx = rx;
                    return self.lost(&format!("WebSocket error from the hub: {e}"), now);
                }
            };
            let (h, p) = (pos + frame.header_len, pos + frame.len());
            pos = p;
            match frame.kind {
                FrameKind::Ping => {
                    let mut payload = [0u8; 125];
                    let n = frame.payload_len;
                    payload[..n].copy_from_slice(&rx[h..p]);
                    self.rx = rx;
                    self.queue_frame(FrameKind::Pong, &mut payload[..n]);
                    continue;
                }
                FrameKind::Close => {
                    let why = match ws::parse_close(&rx[h..p]) {
                        Ok((code, r)) => format!("the hub closed the connection ({code} {r})"),
                        Err(_) => "the hub closed the connection".to_string(),
                    };
                    self.rx = rx;
                    return self.lost(&why, now);
                }
                FrameKind::Binary if frame.fin => {
                    self.on_message(&rx[h..p], now);
                }
                _ => {} // pong, text, fragments: the hub sends none of these
            }
            self.rx = rx;
        }
        if pos > 0 && self.rx_len >= pos {
            self.rx.copy_within(pos..self.rx_len, 0);
            self.rx_len -= pos;
        }
    }

    fn room_of_handle(&self, handle: u16) -> Option<RoomId> {
        self.rooms
            .iter()
            .position(|r| r.in_use && r.handle == Some(handle))
            .map(|i| i as RoomId)
    }

    fn on_message(&mut self, bytes: &[u8], now: u64) {
        self.monitor.record_in(now, bytes.len());
        bump(&self.shared.counters.messages_received, 1);
        bump(&self.shared.counters.bytes_received, bytes.len() as u64);
        let packet = match Packet::new_checked(bytes) {
            Ok(p) => p,
            Err(e) => {
                log::warn!("a malformed message from the hub: {e}");
                return;
            }
        };
        let header = packet.header();
        let mut decompress = std::mem::take(&mut self.decompress);
        match Message::parse(&packet, &mut decompress) {
            Ok(msg) => self.on_protocol(&header, msg, now),
            Err(e) => log::warn!(
                "a malformed {} message from the hub: {e}",
                header.kind.name()
            ),
        }
        self.decompress = decompress;
    }

    fn on_protocol(&mut self, header: &Header, msg: Message<'_>, now: u64) {
        match msg {
            Message::Welcome(w) => {
                self.member = w.member;
                self.resume = w.resume;
                self.phase = Phase::Ready;
                self.connections += 1;
                if self.connections > 1 {
                    bump(&self.shared.counters.reconnects, 1);
                    self.monitor.record_reconnect();
                }
                self.backoff.reset();
                self.last_ping_us = now;
                self.shared
                    .counters
                    .connected
                    .store(true, Ordering::Relaxed);
                log::info!("session open: member {} as {}", w.member, w.user);
                self.emit(Event::Connected { member: w.member });
                for id in 0..self.rooms.len() {
                    if self.rooms[id].in_use {
                        self.send_join(id);
                    }
                }
            }
            Message::RoomSnapshot(s) => {
                let Some(id) = self
                    .rooms
                    .iter()
                    .position(|r| r.in_use && r.name == s.name && r.handle.is_none())
                else {
                    return;
                };
                self.pending_joins.retain(|&p| p != id);
                let members: Vec<MemberSummary> = s
                    .members
                    .iter()
                    .map(|m| MemberSummary {
                        member: m.member,
                        role: m.role,
                        user: m.user.to_string(),
                    })
                    .collect();
                let room = id as RoomId;
                self.members.retain(|m| m.0 != room);
                for m in s.members.iter() {
                    if self.members.len() < self.members.capacity() {
                        self.members.push((room, m.member, user_hash(m.user)));
                    }
                }
                let r = &mut self.rooms[id];
                r.handle = Some(header.room);
                r.role = s.your_role;
                let restored = r.joined_once;
                r.joined_once = true;
                if let Some(tx) = r.reply.take() {
                    let _ = tx.try_send(Ok(id as RoomId));
                }
                // New encoders start with a keyframe for receivers that lost us.
                for (_, e) in r.encoders.iter_mut() {
                    e.force_keyframe();
                }
                self.replay_audio(id, header.room);
                let room = id as RoomId;
                self.emit(if restored {
                    Event::RoomRestored { room, members }
                } else {
                    Event::RoomJoined { room, members }
                });
            }
            Message::MemberJoined(j) => {
                if let Some(room) = self.room_of_handle(header.room) {
                    let m = j.member;
                    if self.members.len() < self.members.capacity() {
                        self.members.push((room, m.member, user_hash(m.user)));
                    }
                    self.emit(Event::MemberJoined {
                        room,
                        member: MemberSummary {
                            member: m.member,
                            role: m.role,
                            user: m.user.to_string(),
                        },
                    });
                }
            }
            Message::MemberLeft(l) => {
                if let Some(room) = self.room_of_handle(header.room) {
                    if l.member == self.member {
                        return;
                    }
                    self.rx_streams
                        .retain(|s| !(s.room == room && s.sender == l.member));
                    self.members.retain(|m| !(m.0 == room && m.1 == l.member));
                    for s in self.syncs.iter_mut() {
                        if s.in_use && s.room == room && s.sender == l.member {
                            s.in_use = false;
                        }
                    }
                    self.emit(Event::MemberLeft {
                        room,
                        member: l.member,
                        reason: l.reason,
                    });
                }
            }
            Message::Kick(_) | Message::CloseRoom(_) => {
                if let Some(room) = self.room_of_handle(header.room) {
                    let r = &mut self.rooms[room as usize];
                    r.in_use = false;
                    r.handle = None;
                    let reason = if header.kind == Kind::Kick {
                        LeaveReason::Kicked
                    } else {
                        LeaveReason::RoomClosed
                    };
                    self.emit(Event::RoomLeft { room, reason });
                }
            }
            Message::Error(e) => {
                self.monitor.record_error(e.code.name());
                // A join refused (the oldest unanswered one): answer the waiting
                // join_room, or give up a room that could not be restored.
                if e.about == Kind::Join as u8
                    && let Some(id) = self.pending_joins.pop_front()
                {
                    let r = &mut self.rooms[id];
                    let reason = e.reason.to_string();
                    r.in_use = false;
                    r.handle = None;
                    match r.reply.take() {
                        Some(tx) => {
                            let _ = tx.try_send(Err(JoinError::Refused {
                                code: e.code,
                                reason,
                            }));
                        }
                        None => {
                            log::warn!("room {} could not be restored: {reason}", r.name);
                            self.emit(Event::RoomLeft {
                                room: id as RoomId,
                                reason: LeaveReason::Disconnected,
                            });
                            self.emit(Event::Error {
                                code: e.code,
                                reason,
                            });
                        }
                    }
                    return;
                }
                log::warn!(
                    "the hub reports {} ({}): {}",
                    e.code.0,
                    e.code.name(),
                    e.reason
                );
                self.emit(Event::Error {
                    code: e.code,
                    reason: e.reason.to_string(),
                });
            }
            Message::Pong(p) => {
                let rtt =
                    (now.saturating_sub(p.t0_us)).saturating_sub(p.t2_us.saturating_sub(p.t1_us));
                self.shared.counters.rtt_us.store(rtt, Ordering::Relaxed);
                self.monitor.record_latency_us(now, rtt);
            }
            Message::Ping(p) => {
                let pong = Message::Pong(proto::Pong {
                    t0_us: p.t0_us,
                    t1_us: now,
                    t2_us: self.now(),
                });
                self.send_control(0, &pong);
            }
            Message::Ack(a) => {
                if a.kind == Kind::Audio as u8
                    && let Some(room) = self.room_of_handle(header.room)
                {
                    self.rooms[room as usize].replay.ack(a.seq);
                }
            }
            Message::NeedsKeyframe(nk) => {
                if let Some(room) = self.room_of_handle(header.room) {
                    for (p, e) in self.rooms[room as usize].encoders.iter_mut() {
                        if *p == nk.person {
                            e.force_keyframe();
                        }
                    }
                }
            }
            Message::RoleChanged(rc) => {
                if rc.member == self.member
                    && let Some(room) = self.room_of_handle(header.room)
                {
                    self.rooms[room as usize].role = rc.role;
                }
            }
            Message::Pose(p) => {
                let Some(room) = self.room_of_handle(header.room) else {
                    return;
                };
                self.on_pose(room, header, &p, now);
            }
            Message::Audio(a) => {
                let Some(room) = self.room_of_handle(header.room) else {
                    return;
                };
                let sender = header.sender;
                let seq = header.seq;
                let who = self
                    .members
                    .iter()
                    .find(|m| m.0 == room && m.1 == sender)
                    .map_or(sender as u64, |m| m.2);
                match self
                    .rx_audio
                    .iter_mut()
                    .find(|(r, s, _)| *r == room && *s == who)
                {
                    Some((_, _, last)) => {
                        if (seq.wrapping_sub(*last) as i32) <= 0 {
                            return; // a duplicate (a replay after a reconnect)
                        }
                        *last = seq;
                    }
                    None => {
                        if self.rx_audio.len() == self.rx_audio.capacity() {
                            self.rx_audio.remove(0);
                        }
                        self.rx_audio.push((room, who, seq));
                    }
                }
                let mut chunk = Box::new(AudioChunk::default());
                a.to_chunk(header, &mut chunk);
                bump(&self.shared.counters.audio_received, 1);
                match self.sync_for(room, sender, now) {
                    Some(k) => {
                        self.syncs[k]
                            .sync
                            .push_audio(seq, header.ts_us, now, &chunk);
                    }
                    None => self.emit(Event::Audio {
                        room,
                        sender,
                        chunk,
                    }),
                }
            }
            Message::Hello(_) | Message::Join(_) | Message::Leave(_) => {}
        }
    }

    fn on_pose(&mut self, room: RoomId, header: &Header, p: &proto::PosePayload<'_>, now: u64) {
        let sender = header.sender;
        let k = match self
            .rx_streams
            .iter()
            .position(|s| s.room == room && s.sender == sender && s.person == p.person)
        {
            Some(k) => k,
            None => {
                if self.rx_streams.len() == self.rx_streams.capacity() {
                    let oldest = self
                        .rx_streams
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, s)| s.used_us)
                        .map_or(0, |(i, _)| i);
                    self.rx_streams.swap_remove(oldest);
                }
                self.rx_streams.push(RxStream {
                    room,
                    sender,
                    person: p.person,
                    decoder: PoseDecoder::new(),
                    used_us: now,
                    asked: false,
                });
                self.rx_streams.len() - 1
            }
        };
        let s = &mut self.rx_streams[k];
        s.used_us = now;
        match s.decoder.decode(header, p) {
            Ok(frame) => {
                s.asked = false;
                let frame = *frame;
                bump(&self.shared.counters.poses_received, 1);
                match self.sync_for(room, sender, now) {
                    Some(k) => {
                        let ts = frame.capture_ts_us;
                        self.syncs[k].sync.push_pose(ts, now, &frame);
                    }
                    None => {
                        let frame = Box::new(frame);
                        self.emit(Event::Pose {
                            room,
                            sender,
                            frame,
                        });
                    }
                }
            }
            Err(proto::Error::NeedsKeyframe) => {
                if !s.asked {
                    s.asked = true;
                    let handle = header.room;
                    let person = p.person;
                    self.send_control(
                        handle,
                        &Message::NeedsKeyframe(NeedsKeyframe {
                            publisher: sender,
                            person,
                        }),
                    );
                }
            }
            Err(e) => log::warn!("a pose from member {sender} does not decode: {e}"),
        }
    }

    /// The aligner of `sender` in `room` (taking the least recently used one if
    /// it has none), or `None` when alignment is off.
    fn sync_for(&mut self, room: RoomId, sender: u16, now: u64) -> Option<usize> {
        if self.syncs.is_empty() {
            return None;
        }
        let k = match self
            .syncs
            .iter()
            .position(|s| s.in_use && s.room == room && s.sender == sender)
        {
            Some(k) => k,
            None => {
                let k = self
                    .syncs
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| (s.in_use, s.used_us))
                    .map(|(k, _)| k)?;
                let s = &mut self.syncs[k];
                s.sync.clear();
                s.room = room;
                s.sender = sender;
                s.in_use = true;
                k
            }
        };
        self.syncs[k].used_us = now;
        Some(k)
    }

    /// Hands out the media whose play-out time has come, in capture-time order
    /// per sender.
    fn release_media(&mut self, now: u64) {
        for k in 0..self.syncs.len() {
            if !self.syncs[k].in_use {
                continue;
            }
            let (room, sender) = (self.syncs[k].room, self.syncs[k].sender);
            loop {
                let event = match self.syncs[k].sync.pop(now) {
                    None => break,
                    Some(Media::Pose { frame, .. }) => Event::Pose {
                        room,
                        sender,
                        frame: Box::new(*frame),
                    },
                    Some(Media::Audio { chunk, .. }) => Event::Audio {
                        room,
                        sender,
                        chunk: Box::new(*chunk),
                    },
                    Some(Media::Gap { seq }) => Event::AudioGap { room, sender, seq },
                };
                self.emit(event);
            }
        }
    }

    fn send_join(&mut self, id: usize) {
        let name = std::mem::take(&mut self.rooms[id].name);
        let role = self.rooms[id].role;
        self.rooms[id].handle = None;
        self.pending_joins.retain(|&p| p != id);
        self.pending_joins.push_back(id);
        self.send_control(0, &Message::Join(Join { room: &name, role }));
        self.rooms[id].name = name;
    }

    /// Sends the room's unacknowledged audio again, readdressed to the new handle
    /// and member id.
    fn replay_audio(&mut self, id: usize, handle: u16) {
        let member = self.member;
        // Swap the window out (for a one-slot spare) so the closure may use `self`.
        let Some(spare) = self.replay_spare.take() else {
            return;
        };
        let mut replay = std::mem::replace(&mut self.rooms[id].replay, spare);
        let mut count = 0u64;
        let mut scratch = std::mem::take(&mut self.scratch);
        replay.unacked_mut_for_resend(handle, member, |msg| {
            scratch[..msg.len()].copy_from_slice(msg);
            let n = msg.len();
            if self.queue_frame(FrameKind::Binary, &mut scratch[..n]) {
                count += 1;
            }
        });
        self.scratch = scratch;
        self.replay_spare = Some(std::mem::replace(&mut self.rooms[id].replay, replay));
        if count > 0 {
            log::info!("replayed {count} unacknowledged audio chunks");
            bump(&self.shared.counters.audio_replayed, count);
            bump(&self.shared.counters.audio_sent, count);
        }
    }

    fn close_session(&mut self) {
        if self.phase == Phase::Ready {
            let mut payload = [0u8; 125];
            let n = ws::close_payload(&mut payload, ws::close_code::NORMAL, "engine shutting down");
            self.queue_frame(FrameKind::Close, &mut payload[..n]);
            let now = self.now();
            self.flush(now);
        }
        if let Some(mut s) = self.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        self.phase = Phase::Down;
    }
}

/// FNV-1a of a user id, with the top bit set so that it never equals a member id.
fn user_hash(user: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h | 1 << 63
}

fn bucket_for(bytes_per_sec: u64, now: u64) -> TokenBucket {
    // A burst of 100 ms of the rate (at least one largest frame): enough to
    // carry a frame, too little to hide the limit.
    TokenBucket::new(bytes_per_sec, (bytes_per_sec / 10).max(2048), now)
}

/// Checks the hub's answer to the upgrade: `101`, and the accept key of RFC 6455 §4.2.2.
fn check_upgrade(head: &[u8], key: &str) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err("the hub's answer to the upgrade is not HTTP".into()),
    }
    if resp.code != Some(101) {
        return Err(format!(
            "the hub refused the WebSocket upgrade: {} {}",
            resp.code.unwrap_or(0),
            resp.reason.unwrap_or("")
        ));
    }
    let expected = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let ok = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("sec-websocket-accept") && h.value == expected.as_bytes()
    });
    if ok {
        Ok(())
    } else {
        Err("the hub's Sec-WebSocket-Accept does not match".into())
    }
}

/// Base64 of 16 bytes (the WebSocket key). Hand-written: 10 lines instead of a
/// crate for one 24-character string per connection.
fn base64_16(bytes: &[u8; 16]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(24);
    for c in bytes.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= c.len() {
                out.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_the_rfc_key() {
        // RFC 6455 §1.3: "the sample nonce" is dGhlIHNhbXBsZSBub25jZQ==.
        assert_eq!(base64_16(b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
    }

    #[test]
    fn hub_urls() {
        let u = HubUrl::parse("ws://example.org:9000/hub").unwrap();
        assert_eq!(
            (u.host_port.as_str(), u.host.as_str(), u.path.as_str()),
            ("example.org:9000", "example.org", "/hub")
        );
        let u = HubUrl::parse("ws://10.0.0.2").unwrap();
        assert_eq!(
            (u.host_port.as_str(), u.path.as_str()),
            ("10.0.0.2:7700", "/")
        );
        assert!(HubUrl::parse("wss://x/").is_err());
        assert!(HubUrl::parse("http://x/").is_err());
    }
}
