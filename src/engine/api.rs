//! The app's side of a running engine: [`EngineHandle`] (send, join, leave,
//! events, counters, shutdown; cheap to clone, usable from any thread), the
//! errors its calls return, and what it shares with the engine's loop. Every
//! send is a push into a preallocated lock-free ring and at most one wake of
//! the loop: no allocation, no lock, no waiting. The wake is a system call, so
//! a send skips it whenever the loop will look at the rings soon enough anyway
//! (the hand-off below, [`Shared::park`]): while it runs, and while it sleeps
//! until a wake-up due within [`MAX_HOLD_US`] (the loop paces its sleep on the
//! capture rate, `pacer.rs`). At a camera's steady rate the call then makes no
//! system call at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use mio::Waker;
use poselink_hal::Clock;

use crate::proto::{self, AudioChunk, ErrorCode, PoseFrame, Role};

use super::metrics::{Counter, CounterTable, EngineMetrics};
use super::pacer::MAX_HOLD_US;
use super::{Event, MemberSummary, Priority, RoomId};

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

/// Why a room request (leave, the owner controls, the member list, the
/// bandwidth limit) was not carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// No session with the hub is open now (the request is not queued: try
    /// again once connected).
    NotConnected,
    /// The room is not joined (never joined, left, kicked, closed, or waiting
    /// for its rejoin after a reconnect).
    NotJoined,
    /// The engine has shut down.
    ShutDown,
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ControlError::NotConnected => {
                "no session with the hub is open: try again once connected"
            }
            ControlError::NotJoined => "the room is not joined: join it first",
            ControlError::ShutDown => "the engine has shut down",
        })
    }
}

impl std::error::Error for ControlError {}

/// A room as [`EngineHandle::join`] returns it: its id and its members at the
/// moment of joining, us included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedRoom {
    /// The engine-local id the other calls take.
    pub id: RoomId,
    /// The members when the hub answered, us included.
    pub members: Vec<MemberSummary>,
}

/// An owner's request about a room.
pub(crate) enum OwnerAction {
    Kick { member: u16, reason: String },
    SetRole { member: u16, role: Role },
    Close { reason: String },
}

/// A pose frame handed over by the app.
pub(super) struct PoseSubmit {
    pub(super) frame: PoseFrame,
    pub(super) room: RoomId,
    pub(super) priority: u8,
    /// When the app handed it over (the engine's clock), µs: the pacer learns
    /// the capture rate from it.
    pub(super) at_us: u64,
}

/// An audio chunk handed over by the app.
pub(super) struct AudioSubmit {
    pub(super) chunk: AudioChunk,
    pub(super) room: RoomId,
    pub(super) priority: u8,
    /// When the app handed it over, µs (as [`PoseSubmit::at_us`]).
    pub(super) at_us: u64,
}

/// A request of the app's that the loop answers.
pub(super) enum Command {
    Join {
        name: String,
        role: Role,
        reply: mpsc::SyncSender<Result<JoinedRoom, JoinError>>,
    },
    Leave(RoomId),
    Bandwidth(u64),
    Report(mpsc::SyncSender<PerformanceReport>),
    Owner {
        room: RoomId,
        action: OwnerAction,
        reply: mpsc::SyncSender<Result<(), ControlError>>,
    },
    Members {
        room: RoomId,
        reply: mpsc::SyncSender<MembersReply>,
    },
}

/// The loop's answer to [`EngineHandle::members`].
pub(crate) type MembersReply = Result<Vec<MemberSummary>, ControlError>;

/// The engine's performance monitor, as [`EngineHandle::performance_report`]
/// returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct PerformanceReport {
    /// Name → value, as [`crate::monitor::PerformanceMonitor::get_performance_metrics`] lists them.
    pub metrics: Vec<(&'static str, f64)>,
    /// The JSON report of [`crate::monitor::PerformanceMonitor::report_json`].
    pub json: String,
}

impl PerformanceReport {
    /// The value of one metric, if known.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.0 == name).map(|m| m.1)
    }
}

/// What the app's threads and the engine's loop share. The hand-over rings are
/// crossbeam's `ArrayQueue` rather than `ringbuf`'s: [`EngineHandle`] is
/// `Clone` and usable from any thread, so they have several producers (and
/// `poll_event` several consumers), which an SPSC ring does not allow.
pub(super) struct Shared {
    pub(super) poses: ArrayQueue<PoseSubmit>,
    pub(super) audio: ArrayQueue<AudioSubmit>,
    pub(super) commands: ArrayQueue<Command>,
    pub(super) events: ArrayQueue<Event>,
    pub(super) waker: Waker,
    /// A wake is written and the loop has not run since: no second one.
    /// (Written by both sides, on a cache line of its own.)
    pub(super) wake_pending: CachePadded<AtomicBool>,
    /// Until when the loop sleeps (the latest it looks at the rings again),
    /// µs on [`clock`](Self::clock); [`RUNNING`] while it runs. See
    /// [`park`](Self::park). The loop writes it every turn and each send
    /// reads it: on a cache line of its own, so that the fields the sends
    /// only read (`stopped`, `clock`, …) stay in the app's core's cache.
    pub(super) park_until: CachePadded<AtomicU64>,
    /// The engine's clock (`CLOCK_MONOTONIC`, or the simulations' clock).
    pub(super) clock: Arc<dyn Clock + Send + Sync>,
    pub(super) stop: AtomicBool,
    pub(super) stopped: AtomicBool,
    /// Whether the app wants [`Event::AudioAcked`].
    pub(super) ack_events: AtomicBool,
    pub(super) counters: CounterTable,
    pub(super) join_timeout: Duration,
    /// How audio is coded: [`EngineHandle::send_audio`] refuses a chunk the
    /// encoder cannot take.
    pub(super) audio_encoding: proto::AudioEncoding,
}

/// [`Shared::park_until`] while the loop runs: it looks at the rings before it sleeps.
pub(super) const RUNNING: u64 = 0;

impl Shared {
    /// Wakes the loop (a system call) unless a wake is already on its way.
    pub(super) fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.counters.add(Counter::Wakes, 1);
            let _ = self.waker.wake();
        }
    }

    /// After a hand-over pushed at `now`: wakes the loop only if it sleeps
    /// with no wake-up due within [`MAX_HOLD_US`]. The other half of
    /// [`park`](Self::park): the push, this fence and the read of
    /// `park_until` here, and the store of `park_until`, the fence and the
    /// look at the rings there, are ordered so that either the loop sees the
    /// frame before it sleeps or this sees when it will wake — a frame is
    /// never left in a ring while the loop sleeps with no wake-up near.
    pub(super) fn handed_over(&self, now: u64) {
        fence(Ordering::SeqCst);
        let until = self.park_until.load(Ordering::SeqCst);
        if until > now.saturating_add(MAX_HOLD_US) {
            self.wake();
        }
    }

    /// The loop is about to sleep until `until_us` at the latest: it says so,
    /// then looks at the rings once more. `false` (and running again) if
    /// something was handed over meanwhile, or a stop asked: then it must not
    /// sleep.
    pub(super) fn park(&self, until_us: u64) -> bool {
        // A look first: while the app keeps handing over (back to back),
        // the loop does not say it sleeps, so no send reads a sleep that
        // does not come and wakes the loop for nothing.
        if !self.idle() {
            return false;
        }
        self.park_until
            .store(until_us.max(RUNNING + 1), Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let idle = self.idle();
        if !idle {
            self.park_until.store(RUNNING, Ordering::SeqCst);
        }
        idle
    }

    /// Nothing handed over or asked, and no stop asked.
    fn idle(&self) -> bool {
        self.poses.is_empty()
            && self.audio.is_empty()
            && self.commands.is_empty()
            && !self.stop.load(Ordering::SeqCst)
    }

    /// The loop woke: it runs, and will look at the rings before it sleeps
    /// again; the wakes written so far are spent.
    pub(super) fn unpark(&self) {
        self.park_until.store(RUNNING, Ordering::SeqCst);
        self.wake_pending.store(false, Ordering::Release);
    }
}

/// The app's side of a running engine; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EngineHandle {
    pub(super) shared: Arc<Shared>,
}

impl core::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

impl EngineHandle {
    /// Hands a pose frame to the engine for `room`: validated, pushed into the
    /// lock-free ring, the loop woken unless it is running or due to look
    /// within 2 ms anyway (at a camera's steady rate it paces itself on the
    /// frames: then the call makes no system call). Never blocks and never
    /// allocates. If the
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
        s.counters.add(Counter::PosesSubmitted, 1);
        let now = s.clock.now_us();
        let item = PoseSubmit {
            frame: *frame,
            room,
            priority: priority.0,
            at_us: now,
        };
        if s.poses.force_push(item).is_some() {
            s.counters.add(Counter::DropsRing, 1);
        }
        s.handed_over(now);
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
        s.audio_encoding.check(chunk).map_err(SendError::Invalid)?;
        let now = s.clock.now_us();
        let item = AudioSubmit {
            chunk: *chunk,
            room,
            priority: priority.0,
            at_us: now,
        };
        if s.audio.push(item).is_err() {
            return Err(SendError::RingFull);
        }
        s.counters.add(Counter::AudioSubmitted, 1);
        s.handed_over(now);
        Ok(())
    }

    /// Joins `room` with `role` (the seed's `join_room`), waiting for the hub's
    /// answer up to `join_timeout_ms`. The engine rejoins it after every
    /// reconnect until [`leave_room`](Self::leave_room).
    pub fn join_room(&self, room: &str, role: Role) -> Result<RoomId, JoinError> {
        self.join(room, role).map(|j| j.id)
    }

    /// [`join_room`](Self::join_room), returning the room with its members at
    /// the moment of joining (us included). Later changes come as
    /// [`Event::MemberJoined`], [`Event::MemberLeft`] and
    /// [`Event::RoleChanged`]; [`members`](Self::members) lists them now.
    pub fn join(&self, room: &str, role: Role) -> Result<JoinedRoom, JoinError> {
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

    /// [`join_room`](Self::join_room) without waiting: the answer comes on the
    /// receiver once the engine's loop has it. For the simulations, whose loop
    /// runs on the caller's thread.
    #[cfg(test)]
    pub(crate) fn join_room_later(
        &self,
        room: &str,
        role: Role,
    ) -> mpsc::Receiver<Result<JoinedRoom, JoinError>> {
        let (tx, rx) = mpsc::sync_channel(1);
        let cmd = Command::Join {
            name: room.to_string(),
            role,
            reply: tx,
        };
        let _ = self.command(cmd);
        rx
    }

    /// Leaves a room (and stops rejoining it). Does nothing once the engine
    /// has shut down; [`try_leave_room`](Self::try_leave_room) says so.
    pub fn leave_room(&self, room: RoomId) {
        let _ = self.try_leave_room(room);
    }

    /// [`leave_room`](Self::leave_room), failing with
    /// [`ControlError::ShutDown`] once the engine has shut down. The hub's
    /// answer comes as [`Event::RoomLeft`].
    pub fn try_leave_room(&self, room: RoomId) -> Result<(), ControlError> {
        self.command(Command::Leave(room))
            .map_err(|_| ControlError::ShutDown)
    }

    /// Limits what the engine sends to `bytes_per_sec` (0: no limit). When the
    /// limit cannot carry the frame rate, pose frames are thinned (the newest
    /// waits, older ones are replaced or age out), never queued into latency.
    /// Does nothing once the engine has shut down;
    /// [`try_set_bandwidth_limit`](Self::try_set_bandwidth_limit) says so.
    pub fn set_bandwidth_limit(&self, bytes_per_sec: u64) {
        let _ = self.try_set_bandwidth_limit(bytes_per_sec);
    }

    /// [`set_bandwidth_limit`](Self::set_bandwidth_limit), failing with
    /// [`ControlError::ShutDown`] once the engine has shut down.
    pub fn try_set_bandwidth_limit(&self, bytes_per_sec: u64) -> Result<(), ControlError> {
        self.command(Command::Bandwidth(bytes_per_sec))
            .map_err(|_| ControlError::ShutDown)
    }

    /// Owner control: asks the hub to remove `member` from `room`; `reason`
    /// (cut to 256 bytes) is shown to that member's user. Returns once the
    /// request is written to the engine's transmit buffer; the hub's answer
    /// comes as [`Event::MemberLeft`] (reason `Kicked`) or, if we may not,
    /// [`Event::Error`] (`forbidden`, `not_member`).
    pub fn kick(&self, room: RoomId, member: u16, reason: &str) -> Result<(), ControlError> {
        let action = OwnerAction::Kick {
            member,
            reason: reason.to_string(),
        };
        self.owner(room, action)
    }

    /// Owner control: gives `member` of `room` another role (no more than that
    /// member's token grants). Every member, us included, hears of it as
    /// [`Event::RoleChanged`]; a refusal comes as [`Event::Error`].
    pub fn set_role(&self, room: RoomId, member: u16, role: Role) -> Result<(), ControlError> {
        self.owner(room, OwnerAction::SetRole { member, role })
    }

    /// Owner control: closes `room` for every member. We get
    /// [`Event::RoomLeft`] with reason `RoomClosed` (and the room is not
    /// rejoined); a refusal comes as [`Event::Error`].
    pub fn close_room(&self, room: RoomId, reason: &str) -> Result<(), ControlError> {
        let action = OwnerAction::Close {
            reason: reason.to_string(),
        };
        self.owner(room, action)
    }

    fn owner(&self, room: RoomId, action: OwnerAction) -> Result<(), ControlError> {
        let rx = self.owner_later(room, action)?;
        rx.recv_timeout(self.shared.join_timeout)
            .unwrap_or(Err(ControlError::ShutDown))
    }

    /// Queues an owner's request; the answer comes on the receiver once the
    /// engine's loop has it (the simulations take it so, on their own thread).
    pub(crate) fn owner_later(
        &self,
        room: RoomId,
        action: OwnerAction,
    ) -> Result<mpsc::Receiver<Result<(), ControlError>>, ControlError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let cmd = Command::Owner {
            room,
            action,
            reply: tx,
        };
        self.command(cmd).map_err(|_| ControlError::ShutDown)?;
        Ok(rx)
    }

    /// The members of a joined room now, us included, as the engine has
    /// followed them since the join (the hub's snapshot, then every join,
    /// leave and role change). Asks the engine's loop (allocates).
    pub fn members(&self, room: RoomId) -> Result<Vec<MemberSummary>, ControlError> {
        let rx = self.members_later(room)?;
        rx.recv_timeout(self.shared.join_timeout)
            .unwrap_or(Err(ControlError::ShutDown))
    }

    /// [`members`](Self::members) without waiting, as
    /// [`owner_later`](Self::owner_later).
    pub(crate) fn members_later(
        &self,
        room: RoomId,
    ) -> Result<mpsc::Receiver<MembersReply>, ControlError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let cmd = Command::Members { room, reply: tx };
        self.command(cmd).map_err(|_| ControlError::ShutDown)?;
        Ok(rx)
    }

    /// Whether [`Event::AudioAcked`] events are wanted (off at start: an app
    /// that does not poll would only see its events ring overflow).
    pub fn set_audio_ack_events(&self, on: bool) {
        self.shared.ack_events.store(on, Ordering::Relaxed);
    }

    /// Whether the engine has shut down or been asked to
    /// ([`shutdown`](Self::shutdown)): every request of its loop (join, leave,
    /// owner controls, members, bandwidth, report) then fails with a
    /// `ShutDown` error, and the sends do once the loop has ended.
    pub fn is_shut_down(&self) -> bool {
        let s = &*self.shared;
        s.stop.load(Ordering::Acquire) || s.stopped.load(Ordering::Relaxed)
    }

    /// The performance monitor's view of the last ten seconds, asked of the
    /// engine's loop (waits for its answer, at most `join_timeout_ms`; `None` if
    /// the engine has stopped). What it measures: `latency_*` is the round trip
    /// to the hub (the heartbeat pings); `fps` pose frames sent;
    /// `msgs_out`/`bytes_out` everything written, `msgs_in`/`bytes_in` everything
    /// received; `queue_depth` the send queue; drops by kind (`ring`,
    /// `superseded`, `evicted`, `refused`, `stale`, `no_room`, `audio_lost`);
    /// errors by the hub's error code names; reconnects; and, with
    /// [`EngineConfig::system_stats`](super::EngineConfig::system_stats), the process's CPU and memory and the SoC
    /// temperature. Builds the report, so it allocates: call it now and then
    /// (say once a second), not per frame.
    pub fn performance_report(&self) -> Option<PerformanceReport> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.command(Command::Report(tx)).ok()?;
        rx.recv_timeout(self.shared.join_timeout).ok()
    }

    fn command(&self, cmd: Command) -> Result<(), ()> {
        let s = &*self.shared;
        if self.is_shut_down() {
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
        self.shared.counters.snapshot()
    }

    /// Whether a session with the hub is open now.
    pub fn is_connected(&self) -> bool {
        self.shared.counters.connected()
    }

    /// The value of one counter (lock-free; what [`metrics`](Self::metrics)
    /// reads for each).
    pub fn counter(&self, c: Counter) -> u64 {
        self.shared.counters.get(c)
    }

    /// Stops the engine: what is queued is sent, unacknowledged audio is given up
    /// to a second to be acknowledged, the connection is closed normally. Join the
    /// thread from [`EdgeEngine::start`](super::EdgeEngine::start) to wait for it.
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

#[cfg(test)]
mod tests {
    //! The hand-off's rule, one step at a time: the app's handle and the
    //! engine's core in memory, the loop's park and unpark called by hand, and
    //! the wakes counted (each one the system call the rule spares).

    use poselink_hal::MockClock;

    use super::*;
    use crate::engine::{EdgeEngine, EngineConfig, EngineCore};

    const T: u64 = 7_000_000;

    fn engine() -> (EngineHandle, EngineCore, MockClock) {
        let clock = MockClock::new(T);
        let (handle, core) =
            EdgeEngine::in_memory(&EngineConfig::default(), clock.clone(), 1).expect("an engine");
        (handle, core, clock)
    }

    fn pose(h: &EngineHandle) {
        h.send_pose(&PoseFrame::zeroed(), RoomId(0), Priority::NORMAL)
            .expect("handed over");
    }

    fn audio(h: &EngineHandle) {
        let chunk = AudioChunk::silence(48_000, 1, 960);
        h.send_audio(&chunk, RoomId(0), Priority::HIGH)
            .expect("handed over");
    }

    #[test]
    fn a_send_wakes_a_loop_asleep_with_no_wake_up_near() {
        let (h, core, _) = engine();
        assert!(core.park(T + 50_000));
        pose(&h);
        assert_eq!(h.counter(Counter::Wakes), 1);
        // The wake is on its way: a second send does not write another.
        audio(&h);
        assert_eq!(h.counter(Counter::Wakes), 1);
    }

    #[test]
    fn an_audio_chunk_wakes_a_loop_asleep_with_no_wake_up_near() {
        let (h, core, _) = engine();
        assert!(core.park(T + 50_000));
        audio(&h);
        assert_eq!(h.counter(Counter::Wakes), 1);
    }

    #[test]
    fn a_send_leaves_a_loop_due_within_the_hold_asleep() {
        let (h, core, clock) = engine();
        assert!(core.park(T + MAX_HOLD_US));
        pose(&h);
        audio(&h);
        assert_eq!(h.counter(Counter::Wakes), 0);
        // Later, the same wake-up is nearer still; earlier it was too far.
        clock.set(T - 1);
        pose(&h);
        assert_eq!(h.counter(Counter::Wakes), 1);
    }

    #[test]
    fn a_send_does_not_wake_a_running_loop_and_the_loop_does_not_sleep_over_it() {
        let (h, mut core, _) = engine();
        core.unpark();
        pose(&h);
        assert_eq!(h.counter(Counter::Wakes), 0);
        // The loop's look before it sleeps finds the frame: it must not sleep.
        assert!(!core.park(T + 50_000));
        assert_eq!(h.shared.park_until.load(Ordering::SeqCst), RUNNING);
        core.take_input(T);
        assert!(core.park(T + 50_000));
        // An audio chunk alike.
        core.unpark();
        audio(&h);
        assert!(!core.park(T + 50_000));
    }

    #[test]
    fn a_request_always_wakes_the_loop() {
        let (h, core, _) = engine();
        assert!(core.park(T + 1_000));
        h.set_bandwidth_limit(1_000_000);
        assert_eq!(h.counter(Counter::Wakes), 1);
        // And a loop about to sleep sees it.
        core.unpark();
        h.set_bandwidth_limit(2_000_000);
        assert!(!core.park(T + 50_000));
    }
}
