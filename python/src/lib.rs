//! # poselink-py
//!
//! The native half of the `poselink` Python package (`poselink._native`): a
//! thin PyO3 shell over [`poselink::engine`], as the C API is over the same
//! engine. The Python half (`python/poselink/__init__.py`) turns what a
//! MediaPipe app holds — a pose result, a landmark list, a numpy array, a list
//! of dicts — into a contiguous `float32` buffer and wraps events in objects;
//! this module does what must not cost Python time or hold the GIL:
//!
//! - a pose frame leaves Python's memory with one copy, from the caller's
//!   buffer (the buffer protocol: a numpy array's own memory) into a frame that
//!   the engine then moves into its preallocated hand-over ring; no Python
//!   object is made per send;
//! - every call that waits for the engine's loop (join, members, the owner
//!   controls, the performance report, waiting for an event, closing)
//!   releases the GIL while it waits, so capture, audio and UI threads keep
//!   running; the engine's handle is shared by all of them (it is `Sync`);
//! - failures become exceptions of specific classes with the engine's sentence
//!   (`InvalidPoseError`, `NotJoinedError`, `EngineClosedError`, ...), never a
//!   silent `False`.
#![deny(missing_docs)]

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use poselink::engine::{
    ControlError, Counter, EdgeEngine, EngineConfig, EngineHandle, EngineReport, Event, JoinError,
    MemberSummary, Priority, RoomId, SendError,
};
use poselink::proto::{
    AudioChunk, AudioCodec, AudioEncoding, LANDMARK_COUNT, Landmark, PoseFrame, PoseMode, Role,
};
use poselink_hal::{Motion, PoseSample, PoseSource, SyntheticConfig, SyntheticPose};
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};

create_exception!(
    _native,
    PoselinkError,
    PyException,
    "Base class of every poselink error."
);
create_exception!(
    _native,
    InvalidPoseError,
    PoselinkError,
    "A pose of the wrong shape, or a value not finite or out of range."
);
create_exception!(
    _native,
    InvalidAudioError,
    PoselinkError,
    "Audio of the wrong type or shape, or a bad sample rate or channel count."
);
create_exception!(
    _native,
    EngineClosedError,
    PoselinkError,
    "The engine has been closed (or its thread has ended)."
);
create_exception!(
    _native,
    NotJoinedError,
    PoselinkError,
    "The room is not joined (never joined, left, kicked or closed)."
);
create_exception!(
    _native,
    NotConnectedError,
    PoselinkError,
    "No session with the hub is open now; try again once connected."
);
create_exception!(
    _native,
    JoinRefusedError,
    PoselinkError,
    "The hub refused the join; the message says why (its error code first)."
);
create_exception!(
    _native,
    HubTimeoutError,
    PoselinkError,
    "No answer from the hub in time."
);
create_exception!(
    _native,
    RingFullError,
    PoselinkError,
    "The audio hand-over ring is full: the engine is not keeping up."
);

/// Values per landmark of a full frame: x, y, z, visibility, presence.
const FULL: usize = 5;

fn send_error(e: SendError) -> PyErr {
    match e {
        SendError::Invalid(_) => InvalidPoseError::new_err(e.to_string()),
        SendError::RingFull => RingFullError::new_err(e.to_string()),
        _ => EngineClosedError::new_err(e.to_string()),
    }
}

fn control_error(e: ControlError, what: &str) -> PyErr {
    let msg = format!("{what}: {e}");
    match e {
        ControlError::NotJoined => NotJoinedError::new_err(msg),
        ControlError::NotConnected => NotConnectedError::new_err(msg),
        _ => EngineClosedError::new_err(msg),
    }
}

fn role_of(name: &str) -> PyResult<Role> {
    match name {
        "owner" => Ok(Role::Owner),
        "member" => Ok(Role::Member),
        "viewer" => Ok(Role::Viewer),
        _ => Err(PyValueError::new_err(format!(
            "role {name:?} is not a role: use \"owner\", \"member\" or \"viewer\""
        ))),
    }
}

fn member_tuple(m: &MemberSummary) -> (u16, String, &'static str) {
    (m.member, m.user.clone(), m.role.name())
}

/// Builds the engine's configuration from the settings the Python `Engine`
/// passes (already checked for unknown names there).
fn engine_config(
    hub: &str,
    token: &str,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<EngineConfig> {
    let mut cfg = EngineConfig {
        hub: hub.to_string(),
        token: token.to_string(),
        client: concat!("poselink-py/", env!("CARGO_PKG_VERSION")).to_string(),
        ..EngineConfig::default()
    };
    let Some(settings) = settings else {
        return Ok(cfg);
    };
    // The audio settings apply together, after the loop (any order in the dict).
    let (mut codec, mut bitrate, mut packet_ms) = (None::<String>, None::<u32>, None::<u8>);
    for (k, v) in settings.iter() {
        let key: String = k.extract()?;
        let bad = |e: PyErr| PyValueError::new_err(format!("setting {key}: {e}"));
        match key.as_str() {
            "client" => cfg.client = v.extract().map_err(bad)?,
            "ca_file" => cfg.ca_file = Some(v.extract().map_err(bad)?),
            "max_rooms" => cfg.max_rooms = v.extract().map_err(bad)?,
            "max_persons" => cfg.max_persons = v.extract().map_err(bad)?,
            "pose_ring" => cfg.pose_ring = v.extract().map_err(bad)?,
            "audio_ring" => cfg.audio_ring = v.extract().map_err(bad)?,
            "queue_capacity" => cfg.queue_capacity = v.extract().map_err(bad)?,
            "max_pose_age_ms" => cfg.max_pose_age_ms = v.extract().map_err(bad)?,
            "bandwidth_limit" => cfg.bandwidth_bytes_per_sec = v.extract().map_err(bad)?,
            "heartbeat_ms" => cfg.heartbeat_ms = v.extract().map_err(bad)?,
            "reconnect_min_ms" => cfg.reconnect_min_ms = v.extract().map_err(bad)?,
            "reconnect_max_ms" => cfg.reconnect_max_ms = v.extract().map_err(bad)?,
            "connect_timeout_ms" => cfg.connect_timeout_ms = v.extract().map_err(bad)?,
            "join_timeout_ms" => cfg.join_timeout_ms = v.extract().map_err(bad)?,
            "audio_window_ms" => cfg.audio_window_ms = v.extract().map_err(bad)?,
            "events_capacity" => cfg.events_capacity = v.extract().map_err(bad)?,
            "decoders" => cfg.decoders = v.extract().map_err(bad)?,
            "playout_delay_ms" => cfg.playout_delay_ms = v.extract().map_err(bad)?,
            "max_senders" => cfg.max_senders = v.extract().map_err(bad)?,
            "system_stats" => cfg.system_stats = v.extract().map_err(bad)?,
            "keyframe_interval_ms" => {
                let ms: u64 = v.extract().map_err(bad)?;
                cfg.encoder.keyframe_interval_us = ms.max(1) * 1000;
            }
            "raw_pose" => {
                let raw: bool = v.extract().map_err(bad)?;
                cfg.encoder.mode = if raw {
                    PoseMode::Raw
                } else {
                    PoseMode::Quantized
                };
            }
            "alert_cpu_percent" => cfg.monitor.cpu_percent = Some(v.extract().map_err(bad)?),
            "alert_memory_growth_mb" => {
                let mb: f64 = v.extract().map_err(bad)?;
                cfg.monitor.memory_growth_bytes = Some((mb * 1024.0 * 1024.0) as u64);
            }
            "alert_fps_below" => cfg.monitor.fps_below = Some(v.extract().map_err(bad)?),
            "alert_latency_p99_ms" => {
                let ms: f64 = v.extract().map_err(bad)?;
                cfg.monitor.latency_p99_us = Some((ms * 1000.0) as u64);
            }
            "alert_soc_temp_c" => cfg.monitor.soc_temp_c = Some(v.extract().map_err(bad)?),
            "audio_codec" => codec = Some(v.extract().map_err(bad)?),
            "opus_bitrate" => bitrate = Some(v.extract().map_err(bad)?),
            "opus_packet_ms" => packet_ms = Some(v.extract().map_err(bad)?),
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown setting {key:?} (see help(poselink.Engine))"
                )));
            }
        }
    }
    poselink::proto::validate_name(&cfg.client, "client name")
        .map_err(|e| PyValueError::new_err(format!("setting client: {e}")))?;
    cfg.encoder.audio = audio_encoding(codec.as_deref(), bitrate, packet_ms)?;
    Ok(cfg)
}

/// The audio coding the settings ask for: PCM16 (`audio_codec` absent or
/// "pcm16"), or "opus": the board setting with `opus_bitrate` and
/// `opus_packet_ms` if given.
fn audio_encoding(
    codec: Option<&str>,
    bitrate: Option<u32>,
    packet_ms: Option<u8>,
) -> PyResult<AudioEncoding> {
    let mut audio = match codec {
        None | Some("pcm16") => AudioEncoding::default(),
        // The module is built with poselink's default features, Opus among them.
        Some("opus") => AudioEncoding::board(),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "setting audio_codec: {other:?}; give \"pcm16\" or \"opus\""
            )));
        }
    };
    if audio.codec == AudioCodec::Pcm16 && (bitrate.is_some() || packet_ms.is_some()) {
        return Err(PyValueError::new_err(
            "settings opus_bitrate and opus_packet_ms need audio_codec=\"opus\"",
        ));
    }
    audio.bitrate_bps = bitrate.unwrap_or(audio.bitrate_bps);
    audio.packet_ms = packet_ms.unwrap_or(audio.packet_ms);
    audio
        .validate()
        .map_err(|e| PyValueError::new_err(format!("setting audio_codec=\"opus\": {e}")))?;
    Ok(audio)
}

/// A running edge engine (one thread, one event loop, one connection to the
/// hub). Made by `poselink.Engine`; use that class, which documents the calls.
#[pyclass(module = "poselink._native", frozen)]
struct NativeEngine {
    handle: EngineHandle,
    thread: Mutex<Option<JoinHandle<EngineReport>>>,
}

#[pymethods]
impl NativeEngine {
    #[new]
    #[pyo3(signature = (hub, token, settings=None))]
    fn new(hub: &str, token: &str, settings: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let cfg = engine_config(hub, token, settings)?;
        let (handle, thread) = EdgeEngine::start(cfg)
            .map_err(|e| PyValueError::new_err(format!("cannot start the engine: {e}")))?;
        Ok(NativeEngine {
            handle,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a frame to the engine. `values` is a C-contiguous float32 buffer
    /// of 33 × `cols` values (`cols` 4: x, y, z, visibility, presence taken as
    /// 1; or 5). Never blocks.
    #[allow(clippy::too_many_arguments)]
    fn send_pose(
        &self,
        py: Python<'_>,
        room: u16,
        values: PyBuffer<f32>,
        cols: usize,
        seq: u32,
        person: u32,
        ts_us: u64,
        priority: u8,
    ) -> PyResult<()> {
        let mut frame = PoseFrame::zeroed();
        frame.seq = seq;
        frame.person = person;
        frame.capture_ts_us = ts_us;
        let n = LANDMARK_COUNT * cols;
        if values.item_count() != n || !(cols == 4 || cols == FULL) {
            return Err(InvalidPoseError::new_err(format!(
                "a pose is 33 landmarks of 4 or 5 values, not {} values in {cols} columns",
                values.item_count()
            )));
        }
        if cols == FULL {
            // The one copy: from the caller's memory into the frame.
            let dst: &mut [f32] = bytemuck::cast_slice_mut(&mut frame.landmarks[..]);
            values.copy_to_slice(py, dst)?;
        } else {
            let mut tmp = [0f32; LANDMARK_COUNT * 4];
            values.copy_to_slice(py, &mut tmp)?;
            for (lm, v) in frame.landmarks.iter_mut().zip(tmp.chunks_exact(4)) {
                *lm = Landmark {
                    x: v[0],
                    y: v[1],
                    z: v[2],
                    visibility: v[3],
                    presence: 1.0,
                };
            }
        }
        self.handle
            .send_pose(&frame, RoomId(room), Priority(priority))
            .map_err(send_error)
    }

    /// Hands one audio chunk (at most 960 interleaved int16 samples) to the
    /// engine. Never blocks.
    #[allow(clippy::too_many_arguments)]
    fn send_audio(
        &self,
        py: Python<'_>,
        room: u16,
        samples: PyBuffer<i16>,
        channels: u8,
        sample_rate: u32,
        seq: u32,
        ts_us: u64,
        priority: u8,
    ) -> PyResult<()> {
        let len = samples.item_count();
        if len == 0 || len > poselink::proto::AUDIO_CHUNK_CAPACITY {
            return Err(InvalidAudioError::new_err(format!(
                "an audio chunk holds 1 to 960 samples, not {len}"
            )));
        }
        if !(1..=2).contains(&channels) || !len.is_multiple_of(channels as usize) {
            return Err(InvalidAudioError::new_err(format!(
                "{len} samples in {channels} channels: channels must be 1 or 2 and divide the count"
            )));
        }
        let mut chunk = AudioChunk::silence(sample_rate, channels, len as u16);
        chunk.seq = seq;
        chunk.capture_ts_us = ts_us;
        samples.copy_to_slice(py, &mut chunk.samples[..len])?;
        self.handle
            .send_audio(&chunk, RoomId(room), Priority(priority))
            .map_err(|e| match e {
                SendError::Invalid(_) => InvalidAudioError::new_err(e.to_string()),
                e => send_error(e),
            })
    }

    /// Joins `room` as `role`, waiting (GIL released) for the hub's answer:
    /// (room id, [(member id, user, role), ...]).
    #[allow(clippy::type_complexity)]
    fn join(
        &self,
        py: Python<'_>,
        room: &str,
        role: &str,
    ) -> PyResult<(u16, Vec<(u16, String, &'static str)>)> {
        let role = role_of(role)?;
        let handle = self.handle.clone();
        let name = room.to_string();
        let r = py.detach(move || handle.join(&name, role));
        match r {
            Ok(j) => Ok((j.id.0, j.members.iter().map(member_tuple).collect())),
            Err(e) => {
                let msg = format!("cannot join room {room:?}: {e}");
                Err(match e {
                    JoinError::Refused { .. } => JoinRefusedError::new_err(msg),
                    JoinError::Timeout => HubTimeoutError::new_err(msg),
                    JoinError::BadName | JoinError::TooManyRooms => PyValueError::new_err(msg),
                    _ => EngineClosedError::new_err(msg),
                })
            }
        }
    }

    /// Leaves a room (the hub's answer comes as a `room_left` event).
    fn leave(&self, room: u16) -> PyResult<()> {
        self.handle
            .try_leave_room(RoomId(room))
            .map_err(|e| control_error(e, "cannot leave the room"))
    }

    /// The members of a joined room now (GIL released while asking).
    fn members(&self, py: Python<'_>, room: u16) -> PyResult<Vec<(u16, String, &'static str)>> {
        let handle = self.handle.clone();
        let list = py
            .detach(move || handle.members(RoomId(room)))
            .map_err(|e| control_error(e, "cannot list the members"))?;
        Ok(list.iter().map(member_tuple).collect())
    }

    fn kick(&self, py: Python<'_>, room: u16, member: u16, reason: &str) -> PyResult<()> {
        let handle = self.handle.clone();
        let reason = reason.to_string();
        py.detach(move || handle.kick(RoomId(room), member, &reason))
            .map_err(|e| control_error(e, "cannot kick"))
    }

    fn set_role(&self, py: Python<'_>, room: u16, member: u16, role: &str) -> PyResult<()> {
        let role = role_of(role)?;
        let handle = self.handle.clone();
        py.detach(move || handle.set_role(RoomId(room), member, role))
            .map_err(|e| control_error(e, "cannot set the role"))
    }

    fn close_room(&self, py: Python<'_>, room: u16, reason: &str) -> PyResult<()> {
        let handle = self.handle.clone();
        let reason = reason.to_string();
        py.detach(move || handle.close_room(RoomId(room), &reason))
            .map_err(|e| control_error(e, "cannot close the room"))
    }

    fn set_bandwidth_limit(&self, bytes_per_sec: u64) -> PyResult<()> {
        self.handle
            .try_set_bandwidth_limit(bytes_per_sec)
            .map_err(|e| control_error(e, "cannot set the bandwidth limit"))
    }

    fn set_audio_ack_events(&self, on: bool) {
        self.handle.set_audio_ack_events(on);
    }

    /// The performance monitor's metrics and its JSON report (GIL released
    /// while the engine's loop builds them).
    fn performance(&self, py: Python<'_>) -> PyResult<(Vec<(&'static str, f64)>, String)> {
        let handle = self.handle.clone();
        let r = py
            .detach(move || handle.performance_report())
            .ok_or_else(|| EngineClosedError::new_err("the engine has shut down: no report"))?;
        Ok((r.metrics, r.json))
    }

    /// The engine's counters (lock-free).
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let h = &self.handle;
        Counter::ALL
            .iter()
            .map(|c| (c.name(), h.counter(*c)))
            .collect()
    }

    fn is_connected(&self) -> bool {
        self.handle.is_connected()
    }

    fn is_closed(&self) -> bool {
        self.handle.is_shut_down()
    }

    /// The next event as a tuple (kind, ...), waiting up to `timeout_s` with
    /// the GIL released; None if none came.
    fn next_event<'py>(
        &self,
        py: Python<'py>,
        timeout_s: f64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let event = if timeout_s <= 0.0 {
            self.handle.poll_event()
        } else {
            let handle = self.handle.clone();
            let t = Duration::from_secs_f64(timeout_s.min(3600.0));
            py.detach(move || handle.wait_event(t))
        };
        event.map(|e| event_tuple(py, &e)).transpose()
    }

    /// Stops the engine (flushes, closes the connection) and waits for its
    /// thread, GIL released; returns the final counters. Idempotent.
    fn close(&self, py: Python<'_>) -> Vec<(&'static str, u64)> {
        self.handle.shutdown();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = py.detach(move || t.join());
        }
        self.counters()
    }
}

/// An engine event as a flat tuple: `(kind, room, member, a, b, c)`; what a,
/// b and c hold depends on the kind (see `poselink/__init__.py`).
fn event_tuple<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyTuple>> {
    let none = py.None();
    let t = match e {
        Event::Connected { member, hub_index } => (
            "connected",
            0u16,
            *member,
            hub_index.into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::Disconnected { reason } => (
            "disconnected",
            0u16,
            0u16,
            reason.into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::Reconnecting { attempt, delay } => (
            "reconnecting",
            0u16,
            0u16,
            attempt.into_pyobject(py)?.into_any().unbind(),
            delay.as_secs_f64().into_pyobject(py)?.into_any().unbind(),
            none,
        )
            .into_pyobject(py)?,
        Event::RoomJoined { room, members } | Event::RoomRestored { room, members } => {
            let kind = if matches!(e, Event::RoomJoined { .. }) {
                "room_joined"
            } else {
                "room_restored"
            };
            let list: Vec<_> = members.iter().map(member_tuple).collect();
            (
                kind,
                room.0,
                0u16,
                list.into_pyobject(py)?.into_any().unbind(),
                none.clone_ref(py),
                none,
            )
                .into_pyobject(py)?
        }
        Event::RoomLeft { room, reason } => (
            "room_left",
            room.0,
            0u16,
            reason.name().into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::MemberJoined { room, member } => (
            "member_joined",
            room.0,
            member.member,
            member.user.as_str().into_pyobject(py)?.into_any().unbind(),
            member.role.name().into_pyobject(py)?.into_any().unbind(),
            none,
        )
            .into_pyobject(py)?,
        Event::MemberLeft {
            room,
            member,
            reason,
        } => (
            "member_left",
            room.0,
            *member,
            reason.name().into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::RoleChanged { room, member, role } => (
            "role_changed",
            room.0,
            *member,
            role.name().into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::Pose {
            room,
            sender,
            frame,
        } => {
            let values: &[f32] = bytemuck::cast_slice(&frame.landmarks[..]);
            let bytes = PyBytes::new(py, bytemuck::cast_slice(values));
            (
                "pose",
                room.0,
                *sender,
                bytes.into_any().unbind(),
                (frame.seq, frame.person)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
                frame.capture_ts_us.into_pyobject(py)?.into_any().unbind(),
            )
                .into_pyobject(py)?
        }
        Event::Audio {
            room,
            sender,
            chunk,
        } => {
            let bytes = PyBytes::new(py, bytemuck::cast_slice(chunk.pcm()));
            (
                "audio",
                room.0,
                *sender,
                bytes.into_any().unbind(),
                (chunk.seq, chunk.sample_rate, chunk.channels)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind(),
                chunk.capture_ts_us.into_pyobject(py)?.into_any().unbind(),
            )
                .into_pyobject(py)?
        }
        Event::AudioGap { room, sender, seq } => (
            "audio_gap",
            room.0,
            *sender,
            seq.into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::AudioLost { room, count } => (
            "audio_lost",
            room.0,
            0u16,
            count.into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::AudioAcked { room, seq } => (
            "audio_acked",
            room.0,
            0u16,
            seq.into_pyobject(py)?.into_any().unbind(),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
        Event::Alert(a) => (
            "alert",
            0u16,
            0u16,
            a.kind.name().into_pyobject(py)?.into_any().unbind(),
            a.value.into_pyobject(py)?.into_any().unbind(),
            a.threshold.into_pyobject(py)?.into_any().unbind(),
        )
            .into_pyobject(py)?,
        Event::Error { code, reason } => (
            "error",
            0u16,
            0u16,
            code.name().into_pyobject(py)?.into_any().unbind(),
            reason.as_str().into_pyobject(py)?.into_any().unbind(),
            code.0.into_pyobject(py)?.into_any().unbind(),
        )
            .into_pyobject(py)?,
        _ => (
            "other",
            0u16,
            0u16,
            none.clone_ref(py),
            none.clone_ref(py),
            none,
        )
            .into_pyobject(py)?,
    };
    Ok(t)
}

/// The hal's synthetic person (walking and waving) as a pose source, for
/// examples and tests without a camera.
#[pyclass(module = "poselink._native")]
struct NativeSynthetic {
    source: SyntheticPose,
    sample: PoseSample,
}

#[pymethods]
impl NativeSynthetic {
    #[new]
    fn new(seed: u64, motion: &str, fps: f32, jitter: f32) -> PyResult<Self> {
        let motion = match motion {
            "walk" => Motion::Walk,
            "wave" => Motion::Wave,
            "mixed" => Motion::Mixed,
            m => {
                return Err(PyValueError::new_err(format!(
                    "motion {m:?}: use \"walk\", \"wave\" or \"mixed\""
                )));
            }
        };
        let cfg = SyntheticConfig {
            seed,
            fps,
            motion,
            jitter,
            ..SyntheticConfig::default()
        };
        Ok(NativeSynthetic {
            source: SyntheticPose::new(cfg),
            sample: PoseSample::zeroed(),
        })
    }

    /// The next frame: (165 float32 values as bytes, capture time µs from 0).
    fn next_frame<'py>(&mut self, py: Python<'py>) -> PyResult<(Bound<'py, PyBytes>, u64)> {
        self.source
            .next_pose(&mut self.sample)
            .map_err(|e| PoselinkError::new_err(format!("synthetic pose: {e:?}")))?;
        let values: &[f32] = bytemuck::cast_slice(&self.sample.landmarks[..]);
        Ok((
            PyBytes::new(py, bytemuck::cast_slice(values)),
            self.sample.capture_ts_us,
        ))
    }
}

/// Sends the library's log to stderr with an env_logger filter ("info",
/// "poselink=debug"; None: RUST_LOG, else "warn"). Returns False if a logger
/// was installed already.
#[pyfunction]
#[pyo3(signature = (filter=None))]
fn log_to_stderr(filter: Option<&str>) -> bool {
    let env = env_logger::Env::default().default_filter_or("warn");
    let mut b = env_logger::Builder::from_env(env);
    if let Some(f) = filter {
        b.parse_filters(f);
    }
    b.try_init().is_ok()
}

/// The quantisation bounds of the pose codec: (x/y/z, visibility/presence).
#[pyfunction]
fn quantisation_bounds() -> (f32, f32) {
    (
        poselink::proto::COORD_MAX_ERROR,
        poselink::proto::SCORE_MAX_ERROR,
    )
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<NativeEngine>()?;
    m.add_class::<NativeSynthetic>()?;
    m.add_function(wrap_pyfunction!(log_to_stderr, m)?)?;
    m.add_function(wrap_pyfunction!(quantisation_bounds, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add("PoselinkError", py.get_type::<PoselinkError>())?;
    m.add("InvalidPoseError", py.get_type::<InvalidPoseError>())?;
    m.add("InvalidAudioError", py.get_type::<InvalidAudioError>())?;
    m.add("EngineClosedError", py.get_type::<EngineClosedError>())?;
    m.add("NotJoinedError", py.get_type::<NotJoinedError>())?;
    m.add("NotConnectedError", py.get_type::<NotConnectedError>())?;
    m.add("JoinRefusedError", py.get_type::<JoinRefusedError>())?;
    m.add("HubTimeoutError", py.get_type::<HubTimeoutError>())?;
    m.add("RingFullError", py.get_type::<RingFullError>())?;
    Ok(())
}
