//! # poselink-capi
//!
//! The C API of the poselink edge engine, for capture apps written in C or C++
//! (MediaPipe, GStreamer, DeepStream): a static library (`libposelink_capi.a`), a
//! shared library (`libposelink_capi.so`) and a header, `include/poselink.h`,
//! generated from this crate by cbindgen and checked in (a test fails when it is
//! stale).
//!
//! Every function is a thin shell over [`poselink::engine`]: it checks its
//! pointers and lengths, runs the Rust call inside a guard that turns a failure
//! into a status code plus a per-thread message ([`poselink_last_error`]) and a
//! panic into [`PoselinkStatus::Panic`], and copies between C structs and Rust
//! types. Nothing is shared with the caller beyond the call: the engine is an
//! opaque pointer, every other pointer is borrowed for the call only, and events
//! are copied into a struct the caller owns. The send calls allocate nothing on
//! success, as the engine's own do.
//!
//! The modules: [`status`] (status codes, messages, the panic guard), [`config`]
//! (the settings struct), [`event`] (events flattened into one fixed-size struct),
//! [`room`] (a room's member list and the owner's controls), [`perf`] (the
//! performance monitor's metrics and report into the caller's buffers), and
//! this file (the engine's lifecycle and calls).
//!
//! The same functions are callable from Rust (this crate is also an `rlib`), which
//! is how its tests drive them:
//!
//! ```no_run
//! use poselink_capi::*;
//! use std::ptr;
//!
//! unsafe {
//!     let mut cfg = std::mem::MaybeUninit::<PoselinkConfig>::uninit();
//!     poselink_config_init(cfg.as_mut_ptr());
//!     let mut cfg = cfg.assume_init();
//!     cfg.hub = c"ws://127.0.0.1:7700/".as_ptr();
//!     let mut engine = ptr::null_mut();
//!     assert_eq!(poselink_engine_create(&cfg, &mut engine), PoselinkStatus::Ok);
//!     let mut room = 0u16;
//!     let status = poselink_join_room(engine, c"studio-1".as_ptr(), PoselinkRole::Member as u32, &mut room);
//!     assert_eq!(status, PoselinkStatus::Ok);
//!     let landmarks = [0.5f32; POSELINK_POSE_VALUES];
//!     let status = poselink_send_pose(engine, room, landmarks.as_ptr(), landmarks.len(), 1, 0, 1_000, POSELINK_PRIORITY_NORMAL);
//!     assert_eq!(status, PoselinkStatus::Ok);
//!     let mut event = Box::new(std::mem::zeroed::<PoselinkEvent>());
//!     while poselink_poll_event(engine, &mut *event) == PoselinkStatus::Ok {
//!         println!("event {:?}", event.kind);
//!     }
//!     poselink_engine_destroy(engine, ptr::null_mut());
//! }
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod event;
mod logger;
pub mod perf;
pub mod room;
pub mod status;

use std::ffi::c_char;
use std::thread::JoinHandle;
use std::time::Duration;

use poselink::engine::{
    ControlError, Counter, EdgeEngine, EngineHandle, EngineMetrics, EngineReport, JoinError,
    Priority, RoomId, SendError,
};
use poselink::proto::{AudioChunk, PoseFrame};

pub use config::{
    POSELINK_MAX_NAME_LEN, POSELINK_MAX_TOKEN_LEN, POSELINK_MAX_URL_LEN, PoselinkConfig,
    poselink_config_init,
};
pub use event::{
    POSELINK_AUDIO_CAPACITY, POSELINK_LANDMARK_COUNT, POSELINK_LANDMARK_VALUES,
    POSELINK_POSE_VALUES, POSELINK_TEXT_CAPACITY, PoselinkAlertKind, PoselinkAudio, PoselinkEvent,
    PoselinkEventKind, PoselinkLeaveReason, PoselinkPose, PoselinkRole,
};
pub use perf::{
    POSELINK_METRIC_NAME_CAPACITY, PoselinkMetric, poselink_performance_metrics,
    poselink_performance_report,
};
pub use room::{
    POSELINK_USER_CAPACITY, PoselinkMember, poselink_close_room, poselink_kick,
    poselink_room_members, poselink_set_role,
};
pub use status::{PoselinkStatus, poselink_last_error, poselink_status_name};

use config::read_str;
use status::{Failure, guard};

/// The version of the C API's interface: it changes when a function, a struct
/// layout or a constant changes incompatibly. Compare with
/// `poselink_abi_version()` at start-up to catch a header and a library of
/// different versions.
pub const POSELINK_ABI_VERSION: u32 = 2;

/// Background data: dropped first when the send queue is full.
pub const POSELINK_PRIORITY_LOW: u8 = 64;
/// The usual priority.
pub const POSELINK_PRIORITY_NORMAL: u8 = 128;
/// Latency-critical data: sent first, dropped last.
pub const POSELINK_PRIORITY_HIGH: u8 = 192;

const _: () = assert!(POSELINK_PRIORITY_LOW == Priority::LOW.0);
const _: () = assert!(POSELINK_PRIORITY_NORMAL == Priority::NORMAL.0);
const _: () = assert!(POSELINK_PRIORITY_HIGH == Priority::HIGH.0);

/// A running edge engine: one thread running one event loop that owns the
/// connection to the hub. Opaque; made by `poselink_engine_create`, freed by
/// `poselink_engine_destroy`.
pub struct PoselinkEngine {
    pub(crate) handle: EngineHandle,
    thread: Option<JoinHandle<EngineReport>>,
}

/// The engine's counters, as `poselink_metrics` copies them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoselinkMetrics {
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
    /// Pose frames replaced in the hand-over ring (the engine was behind).
    pub drops_ring: u64,
    /// Pose frames replaced by a newer one in the send queue.
    pub drops_superseded: u64,
    /// Entries evicted by higher priorities.
    pub drops_evicted: u64,
    /// Entries refused by a full queue of higher priorities.
    pub drops_refused: u64,
    /// Pose frames dropped for age (the network or the bandwidth limit could
    /// not carry them).
    pub drops_stale: u64,
    /// Frames for a room not joined.
    pub drops_no_room: u64,
    /// Audio chunks that left the replay window unacknowledged.
    pub audio_lost: u64,
    /// Events dropped because the app did not poll them.
    pub events_dropped: u64,
    /// Pose frames received and decoded.
    pub poses_received: u64,
    /// Audio chunks received.
    pub audio_received: u64,
    /// Connections made after the first.
    pub reconnects: u64,
    /// The last round trip to the hub, µs.
    pub rtt_us: u64,
    /// 1 while a session with the hub is open, else 0.
    pub connected: u32,
    /// Zero.
    pub reserved: u32,
}

impl PoselinkMetrics {
    /// Fills the C struct from the engine's counter table: each field reads
    /// the [`Counter`] of the same name (a test checks every name).
    fn read(get: impl Fn(Counter) -> u64, connected: bool) -> PoselinkMetrics {
        PoselinkMetrics {
            poses_submitted: get(Counter::PosesSubmitted),
            audio_submitted: get(Counter::AudioSubmitted),
            poses_sent: get(Counter::PosesSent),
            audio_sent: get(Counter::AudioSent),
            audio_replayed: get(Counter::AudioReplayed),
            bytes_sent: get(Counter::BytesSent),
            drops_ring: get(Counter::DropsRing),
            drops_superseded: get(Counter::DropsSuperseded),
            drops_evicted: get(Counter::DropsEvicted),
            drops_refused: get(Counter::DropsRefused),
            drops_stale: get(Counter::DropsStale),
            drops_no_room: get(Counter::DropsNoRoom),
            audio_lost: get(Counter::AudioLost),
            events_dropped: get(Counter::EventsDropped),
            poses_received: get(Counter::PosesReceived),
            audio_received: get(Counter::AudioReceived),
            reconnects: get(Counter::Reconnects),
            rtt_us: get(Counter::RttUs),
            connected: u32::from(connected),
            reserved: 0,
        }
    }
}

impl From<EngineMetrics> for PoselinkMetrics {
    /// The final counters of a stopped engine (its report's snapshot).
    fn from(m: EngineMetrics) -> Self {
        PoselinkMetrics::read(|c| m.get(c), m.connected)
    }
}

/// The engine behind a pointer, or a `NULL_POINTER` failure.
///
/// # Safety
/// `engine` is NULL or a pointer from `poselink_engine_create` not yet destroyed.
pub(crate) unsafe fn engine_ref<'a>(
    engine: *const PoselinkEngine,
) -> Result<&'a PoselinkEngine, Failure> {
    // SAFETY: the caller's promise.
    unsafe { engine.as_ref() }.ok_or_else(|| Failure::null("engine"))
}

fn send_failure(e: SendError) -> Failure {
    let status = match e {
        SendError::Invalid(_) => PoselinkStatus::InvalidFrame,
        SendError::RingFull => PoselinkStatus::RingFull,
        SendError::ShutDown => PoselinkStatus::ShutDown,
        _ => PoselinkStatus::InvalidArgument,
    };
    Failure::new(status, e.to_string())
}

/// Starts an engine: checks `*config`, allocates every buffer and starts the
/// engine's thread, which connects to the hub (and reconnects) on its own. On
/// success `*engine_out` is the new engine; on failure it is set to NULL.
///
/// Fails with `NULL_POINTER`, `BAD_LENGTH` (`struct_size`, a string too long),
/// `INVALID_ARGUMENT` (a value out of range, a hub URL that is not `ws://…` or
/// `wss://…`, a CA file that cannot be read or holds no certificate) or
/// `IO` (no thread or event queue could be made).
///
/// # Safety
/// `config` is NULL or points to a `PoselinkConfig` whose strings are NULL or
/// NUL-terminated; `engine_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_engine_create(
    config: *const PoselinkConfig,
    engine_out: *mut *mut PoselinkEngine,
) -> PoselinkStatus {
    guard("poselink_engine_create", || {
        if engine_out.is_null() {
            return Err(Failure::null("engine_out"));
        }
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { engine_out.write(std::ptr::null_mut()) };
        // SAFETY: the caller's promise.
        let config = unsafe { config.as_ref() }.ok_or_else(|| Failure::null("config"))?;
        // SAFETY: the caller's promise about the strings.
        let cfg = unsafe { config.engine_config() }?;
        let (handle, thread) = EdgeEngine::start(cfg).map_err(|e| {
            let status = if e.kind() == std::io::ErrorKind::InvalidInput {
                PoselinkStatus::InvalidArgument
            } else {
                PoselinkStatus::Io
            };
            Failure::new(status, format!("cannot start the engine: {e}"))
        })?;
        let engine = Box::new(PoselinkEngine {
            handle,
            thread: Some(thread),
        });
        // SAFETY: as above.
        unsafe { engine_out.write(Box::into_raw(engine)) };
        Ok(PoselinkStatus::Ok)
    })
}

/// Stops the engine and frees it: what is queued is sent, unacknowledged audio
/// is given up to a second to be acknowledged, the connection is closed, the
/// thread is joined. Blocks until then (normally well under two seconds). If
/// `final_metrics` is not NULL, the counters at the end are written there.
///
/// `engine` is invalid afterwards, whatever the status. Call it once, after
/// every other thread has stopped using the engine. Returns `OK`,
/// `NULL_POINTER` (engine NULL: nothing done), or `PANIC` (the engine's thread
/// had failed; the counters written are then the last ones seen).
///
/// # Safety
/// `engine` is NULL or a pointer from `poselink_engine_create` not yet
/// destroyed, and no other thread uses it during or after the call;
/// `final_metrics` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_engine_destroy(
    engine: *mut PoselinkEngine,
    final_metrics: *mut PoselinkMetrics,
) -> PoselinkStatus {
    guard("poselink_engine_destroy", || {
        if engine.is_null() {
            return Err(Failure::null("engine"));
        }
        // SAFETY: made by Box::into_raw in poselink_engine_create; the caller
        // promises it is not used again.
        let mut engine = unsafe { Box::from_raw(engine) };
        engine.handle.shutdown();
        let joined = engine.thread.take().map(JoinHandle::join);
        let (metrics, result) = match joined {
            Some(Ok(report)) => (report.metrics, Ok(PoselinkStatus::Ok)),
            _ => (
                engine.handle.metrics(),
                Err(Failure::new(
                    PoselinkStatus::Panic,
                    "the engine's thread had failed (see the log); the engine is freed",
                )),
            ),
        };
        if !final_metrics.is_null() {
            // SAFETY: checked non-NULL; the caller promises it writable.
            unsafe { final_metrics.write(metrics.into()) };
        }
        result
    })
}

/// Joins `room` (1 to 64 bytes of letters, digits and `-_.:@/`, NUL-terminated)
/// with `role` (one of `POSELINK_ROLE_OWNER`, `_MEMBER`, `_VIEWER`), waiting for
/// the hub's answer up to `join_timeout_ms`. On success `*room_out` is the
/// engine-local room id that the other calls take; it stays valid across
/// reconnects (the engine rejoins the room after each) until
/// `poselink_leave_room`.
///
/// Fails with `NULL_POINTER`, `BAD_LENGTH` (name longer than 64 bytes),
/// `INVALID_ARGUMENT` (bad name or role), `REFUSED` (the hub said no; the
/// message says why), `TIMEOUT`, `TOO_MANY_ROOMS` or `SHUT_DOWN`.
///
/// # Safety
/// `engine` is NULL or a live engine; `room` is NULL or NUL-terminated (at most
/// 65 bytes are read); `room_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_join_room(
    engine: *const PoselinkEngine,
    room: *const c_char,
    role: u32,
    room_out: *mut u16,
) -> PoselinkStatus {
    guard("poselink_join_room", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if room_out.is_null() {
            return Err(Failure::null("room_out"));
        }
        // SAFETY: the caller's promise.
        let name = unsafe { read_str(room, POSELINK_MAX_NAME_LEN, "the room name") }?
            .ok_or_else(|| Failure::null("room"))?;
        let role = PoselinkRole::from_u32(role).ok_or_else(|| {
            Failure::new(
                PoselinkStatus::InvalidArgument,
                format!(
                    "role {role} is not a role: use POSELINK_ROLE_OWNER (0), \
                     POSELINK_ROLE_MEMBER (1) or POSELINK_ROLE_VIEWER (2)"
                ),
            )
        })?;
        let id = engine.handle.join_room(name, role).map_err(|e| {
            let status = match e {
                JoinError::Refused { .. } => PoselinkStatus::Refused,
                JoinError::Timeout => PoselinkStatus::Timeout,
                JoinError::TooManyRooms => PoselinkStatus::TooManyRooms,
                JoinError::BadName => PoselinkStatus::InvalidArgument,
                JoinError::ShutDown => PoselinkStatus::ShutDown,
                _ => PoselinkStatus::InvalidArgument,
            };
            Failure::new(status, format!("cannot join room {name:?}: {e}"))
        })?;
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { room_out.write(id.0) };
        Ok(PoselinkStatus::Ok)
    })
}

/// Leaves a room and stops rejoining it; returns at once (the hub's answer
/// comes as a `ROOM_LEFT` event). Returns `OK`, `NULL_POINTER` or
/// `SHUT_DOWN` (after `poselink_engine_shutdown`, or if the engine's thread
/// has ended).
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_leave_room(
    engine: *const PoselinkEngine,
    room: u16,
) -> PoselinkStatus {
    guard("poselink_leave_room", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        engine
            .handle
            .try_leave_room(RoomId(room))
            .map_err(|e| control_failure(e, "cannot leave the room"))?;
        Ok(PoselinkStatus::Ok)
    })
}

/// Asks the engine to stop, without freeing it: what is queued is sent,
/// unacknowledged audio is given up to a second, the connection is closed.
/// Returns at once; from then on every call that needs the engine's loop
/// (join, leave, owner controls, members, bandwidth, report) returns
/// `SHUT_DOWN`, and the send calls do once the loop has ended (normally well
/// under two seconds). `poselink_engine_destroy` is still needed to free it.
/// Calling it again does nothing. Returns `OK` or `NULL_POINTER`.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_engine_shutdown(engine: *const PoselinkEngine) -> PoselinkStatus {
    guard("poselink_engine_shutdown", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        engine.handle.shutdown();
        Ok(PoselinkStatus::Ok)
    })
}

/// Turns `AUDIO_ACKED` events on (`on` non-zero) or off (the default): the
/// hub's confirmations that our audio chunks were relayed, the highest
/// sequence number per room, a few times a second. Off by default so that an
/// app that does not poll events has nothing piling up. Returns `OK` or
/// `NULL_POINTER`.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_set_audio_ack_events(
    engine: *const PoselinkEngine,
    on: u32,
) -> PoselinkStatus {
    guard("poselink_set_audio_ack_events", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        engine.handle.set_audio_ack_events(on != 0);
        Ok(PoselinkStatus::Ok)
    })
}

/// A room request's refusal as a status and a sentence starting with `what`.
pub(crate) fn control_failure(e: ControlError, what: &str) -> Failure {
    let status = match e {
        ControlError::NotConnected => PoselinkStatus::NotConnected,
        ControlError::NotJoined => PoselinkStatus::NotJoined,
        _ => PoselinkStatus::ShutDown,
    };
    Failure::new(status, format!("{what}: {e}"))
}

/// Hands one pose frame to the engine for `room`: `landmarks` holds `len` =
/// 165 floats, landmark after landmark in MediaPipe BlazePose order, each as x,
/// y, z, visibility, presence (x, y, z in -1 to 2, the scores in 0 to 1).
/// `seq` must grow by at least one per frame of a `person`'s stream;
/// `capture_ts_us` is the capture time on the monotonic clock that also stamps
/// the audio; `priority` is one of `POSELINK_PRIORITY_*` (or any 0–255).
///
/// Never blocks and allocates nothing: the frame is checked, copied into a
/// lock-free ring and the engine woken. If the engine has fallen behind, the
/// oldest waiting frame is replaced (counted in `drops_ring`).
///
/// Fails with `NULL_POINTER`, `BAD_LENGTH` (`len` is not 165),
/// `INVALID_ARGUMENT` (`landmarks` not aligned for `float`), `INVALID_FRAME` (a
/// value not finite or out of range: the message names the landmark and the
/// value) or `SHUT_DOWN`.
///
/// # Safety
/// `engine` is NULL or a live engine; `landmarks` is NULL or readable for `len`
/// floats.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // flat, so that a capture loop passes its arrays as they are
pub unsafe extern "C" fn poselink_send_pose(
    engine: *const PoselinkEngine,
    room: u16,
    landmarks: *const f32,
    len: usize,
    seq: u32,
    person: u32,
    capture_ts_us: u64,
    priority: u8,
) -> PoselinkStatus {
    guard("poselink_send_pose", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if landmarks.is_null() {
            return Err(Failure::null("landmarks"));
        }
        if len != POSELINK_POSE_VALUES {
            return Err(Failure::new(
                PoselinkStatus::BadLength,
                format!(
                    "a pose frame is {POSELINK_POSE_VALUES} floats (33 landmarks of x, y, z, \
                     visibility, presence), not {len}"
                ),
            ));
        }
        if !landmarks.is_aligned() {
            return Err(Failure::new(
                PoselinkStatus::InvalidArgument,
                "landmarks is not aligned for float",
            ));
        }
        // SAFETY: non-NULL, aligned, and the caller promises `len` readable floats.
        let values = unsafe { std::slice::from_raw_parts(landmarks, len) };
        let (rows, _) = values.as_chunks::<POSELINK_LANDMARK_VALUES>();
        let rows: &[[f32; POSELINK_LANDMARK_VALUES]; POSELINK_LANDMARK_COUNT] = rows
            .try_into()
            .map_err(|_| Failure::new(PoselinkStatus::BadLength, "bad landmark count"))?;
        let frame = PoseFrame::from_arrays(seq, person, capture_ts_us, rows);
        engine
            .handle
            .send_pose(&frame, RoomId(room), Priority(priority))
            .map_err(send_failure)?;
        Ok(PoselinkStatus::Ok)
    })
}

/// Hands one audio chunk to the engine for `room`: `len` interleaved PCM16
/// samples (all channels; 1 to 960, a whole number of frames), `channels` 1 or
/// 2, `sample_rate` 8000 to 192000 Hz. `seq` numbers the chunks of the stream
/// without gaps (the engine's replay after a reconnect and the receivers'
/// duplicate check rely on it); `capture_ts_us` is the capture time of the
/// first sample on the clock that stamps the pose frames. 20 ms chunks are the
/// convention (960 samples at 48 kHz mono).
///
/// Never blocks and allocates nothing. Audio is never replaced: when the
/// hand-over ring is full the call fails with `RING_FULL` and the chunk is not
/// taken. Also fails with `NULL_POINTER`, `BAD_LENGTH`, `INVALID_ARGUMENT`
/// (`samples` not aligned for `int16_t`), `INVALID_FRAME` (bad channels or
/// sample rate) or `SHUT_DOWN`.
///
/// # Safety
/// `engine` is NULL or a live engine; `samples` is NULL or readable for `len`
/// samples.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // flat, so that an audio callback passes its buffer as it is
pub unsafe extern "C" fn poselink_send_audio(
    engine: *const PoselinkEngine,
    room: u16,
    samples: *const i16,
    len: usize,
    channels: u32,
    sample_rate: u32,
    seq: u32,
    capture_ts_us: u64,
    priority: u8,
) -> PoselinkStatus {
    guard("poselink_send_audio", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if samples.is_null() {
            return Err(Failure::null("samples"));
        }
        if len == 0 || len > POSELINK_AUDIO_CAPACITY {
            return Err(Failure::new(
                PoselinkStatus::BadLength,
                format!(
                    "an audio chunk holds 1 to {POSELINK_AUDIO_CAPACITY} samples, not {len}: \
                     send 20 ms at a time"
                ),
            ));
        }
        if !(1..=2).contains(&channels) {
            return Err(Failure::new(
                PoselinkStatus::InvalidFrame,
                format!("invalid frame: channels is {channels}; it must be 1 or 2"),
            ));
        }
        if !len.is_multiple_of(channels as usize) {
            return Err(Failure::new(
                PoselinkStatus::BadLength,
                format!("{len} samples are not a whole number of {channels}-channel frames"),
            ));
        }
        if !samples.is_aligned() {
            return Err(Failure::new(
                PoselinkStatus::InvalidArgument,
                "samples is not aligned for int16_t",
            ));
        }
        // SAFETY: non-NULL, aligned, and the caller promises `len` readable samples.
        let pcm = unsafe { std::slice::from_raw_parts(samples, len) };
        let mut chunk = AudioChunk::silence(sample_rate, channels as u8, len as u16);
        chunk.seq = seq;
        chunk.capture_ts_us = capture_ts_us;
        chunk.samples[..len].copy_from_slice(pcm);
        engine
            .handle
            .send_audio(&chunk, RoomId(room), Priority(priority))
            .map_err(send_failure)?;
        Ok(PoselinkStatus::Ok)
    })
}

/// Takes the oldest waiting event into `*event`: returns `OK` with an event,
/// `NO_EVENT` (and `event->kind` = `POSELINK_EVENT_KIND_NONE`) when none waits,
/// or `NULL_POINTER`. Never blocks. Events wait in a bounded queue
/// (`events_capacity`); poll often enough, or the oldest are dropped (counted in
/// `events_dropped`).
///
/// # Safety
/// `engine` is NULL or a live engine; `event` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_poll_event(
    engine: *const PoselinkEngine,
    event: *mut PoselinkEvent,
) -> PoselinkStatus {
    guard("poselink_poll_event", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if event.is_null() {
            return Err(Failure::null("event"));
        }
        let next = engine.handle.poll_event();
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { write_event(event, next.as_ref()) };
        Ok(if next.is_some() {
            PoselinkStatus::Ok
        } else {
            PoselinkStatus::NoEvent
        })
    })
}

/// Like `poselink_poll_event`, but waits up to `timeout_ms` for an event.
///
/// # Safety
/// As `poselink_poll_event`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_wait_event(
    engine: *const PoselinkEngine,
    event: *mut PoselinkEvent,
    timeout_ms: u32,
) -> PoselinkStatus {
    guard("poselink_wait_event", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if event.is_null() {
            return Err(Failure::null("event"));
        }
        let next = engine
            .handle
            .wait_event(Duration::from_millis(u64::from(timeout_ms)));
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { write_event(event, next.as_ref()) };
        Ok(if next.is_some() {
            PoselinkStatus::Ok
        } else {
            PoselinkStatus::NoEvent
        })
    })
}

/// Writes `event` (or an empty one) into `out`, building it in place: the
/// struct is 2.9 KB, and a stack copy of it is not needed.
///
/// # Safety
/// `out` is writable for one `PoselinkEvent`.
unsafe fn write_event(out: *mut PoselinkEvent, event: Option<&poselink::engine::Event>) {
    // SAFETY: the caller's promise; `empty()` makes every byte defined before
    // the reference is formed.
    unsafe {
        out.write(PoselinkEvent::empty());
        if let Some(e) = event {
            (*out).fill(e);
        }
    }
}

/// Copies the engine's counters into `*metrics`. Returns `OK` or
/// `NULL_POINTER`. Lock-free; cheap enough to call every frame.
///
/// # Safety
/// `engine` is NULL or a live engine; `metrics` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_metrics(
    engine: *const PoselinkEngine,
    metrics: *mut PoselinkMetrics,
) -> PoselinkStatus {
    guard("poselink_metrics", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        if metrics.is_null() {
            return Err(Failure::null("metrics"));
        }
        let h = &engine.handle;
        // SAFETY: checked non-NULL; the caller promises it writable.
        unsafe { metrics.write(PoselinkMetrics::read(|c| h.counter(c), h.is_connected())) };
        Ok(PoselinkStatus::Ok)
    })
}

/// Limits what the engine sends to `bytes_per_sec` (0: no limit), from now on.
/// When the limit cannot carry the frame rate, pose frames are thinned (the
/// newest waits, older ones are replaced or age out), never queued into
/// latency. Returns `OK`, `NULL_POINTER` or `SHUT_DOWN`.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_set_bandwidth_limit(
    engine: *const PoselinkEngine,
    bytes_per_sec: u64,
) -> PoselinkStatus {
    guard("poselink_set_bandwidth_limit", || {
        // SAFETY: the caller's promise.
        let engine = unsafe { engine_ref(engine) }?;
        engine
            .handle
            .try_set_bandwidth_limit(bytes_per_sec)
            .map_err(|e| control_failure(e, "cannot set the bandwidth limit"))?;
        Ok(PoselinkStatus::Ok)
    })
}

/// `POSELINK_ABI_VERSION` of the library actually linked.
#[unsafe(no_mangle)]
pub extern "C" fn poselink_abi_version() -> u32 {
    POSELINK_ABI_VERSION
}

/// The library's version, e.g. `"0.1.0"`: a static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn poselink_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// Sends the library's log to stderr, a line per record. `filter` is a filter in
/// `env_logger`'s syntax (`RUST_LOG`'s) such as `"info"`, `"warn"` or
/// `"poselink=debug"`, applied on top of `RUST_LOG` (or `"info"` if that is
/// unset); NULL takes `RUST_LOG` alone. Without this call the library logs
/// nothing. Returns `OK`, `BAD_LENGTH` (a filter over 1024 bytes),
/// `INVALID_ARGUMENT` (not UTF-8, or a logger is installed already).
///
/// # Safety
/// `filter` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn poselink_log_to_stderr(filter: *const c_char) -> PoselinkStatus {
    guard("poselink_log_to_stderr", || {
        // SAFETY: the caller's promise.
        let filter = unsafe { read_str(filter, 1024, "the log filter") }?;
        logger::install(filter).map_err(|e| {
            Failure::new(
                PoselinkStatus::InvalidArgument,
                format!("cannot install the logger: {e}"),
            )
        })?;
        Ok(PoselinkStatus::Ok)
    })
}
