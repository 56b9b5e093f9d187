"""poselink: stream live human pose and audio through a poselink hub.

The Rust edge engine of poselink, from Python: a lock-free send path (a pose
frame crosses into the engine with one copy, the call never blocks), a send
queue with priorities and a bandwidth limit, reconnection with the rooms
restored and unacknowledged audio replayed, received poses as numpy arrays,
and the performance monitor.

    import poselink

    with poselink.Engine("ws://hub.local:7700/", token=TOKEN) as engine:
        room = engine.join_room("studio-1")            # role="member"
        print(room.members)
        engine.send_pose_data(results, "studio-1")     # a MediaPipe result, a numpy array, ...
        engine.send_audio(pcm_int16, "studio-1")
        for event in engine.events(timeout=0.1):
            if event.kind == "pose":
                print(event.member, event.pose[0])     # (33, 5) float32: x, y, z, visibility, presence
        print(engine.get_performance_metrics())

Every failure raises a subclass of :class:`PoselinkError` with the engine's
sentence: :class:`InvalidPoseError` (wrong shape, NaN, out of range),
:class:`InvalidAudioError`, :class:`NotJoinedError`, :class:`EngineClosedError`,
:class:`JoinRefusedError`, :class:`HubTimeoutError`, :class:`NotConnectedError`,
:class:`RingFullError`. docs/PYTHON.md is the guide.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import (
    EngineClosedError,
    HubTimeoutError,
    InvalidAudioError,
    InvalidPoseError,
    JoinRefusedError,
    NotConnectedError,
    NotJoinedError,
    PoselinkError,
    RingFullError,
    log_to_stderr,
)

__all__ = [
    "Engine",
    "Room",
    "Member",
    "Event",
    "SyntheticPose",
    "to_landmarks",
    "quantisation_bounds",
    "log_to_stderr",
    "PoselinkError",
    "InvalidPoseError",
    "InvalidAudioError",
    "EngineClosedError",
    "NotJoinedError",
    "NotConnectedError",
    "JoinRefusedError",
    "HubTimeoutError",
    "RingFullError",
    "LANDMARK_COUNT",
    "__version__",
]

__version__: str = _native.VERSION

#: Landmarks in a pose frame (MediaPipe BlazePose).
LANDMARK_COUNT = 33

#: Audio samples (all channels) the engine takes per chunk: 20 ms of 48 kHz mono.
AUDIO_CHUNK_SAMPLES = 960

_SETTINGS = frozenset(
    {
        "client", "ca_file", "max_rooms", "max_persons", "pose_ring", "audio_ring", "queue_capacity",
        "max_pose_age_ms", "bandwidth_limit", "heartbeat_ms", "reconnect_min_ms",
        "reconnect_max_ms", "connect_timeout_ms", "join_timeout_ms", "audio_window_ms",
        "events_capacity", "decoders", "playout_delay_ms", "max_senders", "system_stats",
        "keyframe_interval_ms", "raw_pose", "alert_cpu_percent", "alert_memory_growth_mb",
        "alert_fps_below", "alert_latency_p99_ms", "alert_soc_temp_c",
        "audio_codec", "opus_bitrate", "opus_packet_ms",
    }
)


def quantisation_bounds() -> tuple[float, float]:
    """The pose codec's largest error: (x/y/z, visibility/presence)."""
    return _native.quantisation_bounds()


@dataclass(frozen=True)
class Member:
    """A member of a room: its hub-assigned id, user id (from its token) and role."""

    member: int
    user: str
    role: str


@dataclass
class Room:
    """A joined room: its name, the engine's id for it, our role, and its members
    when it was joined (us included). :meth:`Engine.members` lists them now."""

    name: str
    id: int
    role: str
    members: list[Member] = field(default_factory=list)


@dataclass
class Event:
    """Something the engine reports. ``kind`` says what; the other fields are set
    as the kind needs and ``None`` otherwise:

    - ``connected`` (``member``: our id, ``hub``: the index of the hub in the
      engine's list), ``disconnected`` (``text``),
      ``reconnecting`` (``attempt``, ``delay``)
    - ``room_joined`` / ``room_restored`` (``room``, ``members``),
      ``room_left`` (``room``, ``reason``: left, kicked, room_closed, ...)
    - ``member_joined`` (``room``, ``member``, ``user``, ``role``),
      ``member_left`` (``room``, ``member``, ``reason``),
      ``role_changed`` (``room``, ``member``, ``role``)
    - ``pose`` (``room``, ``member``: the publisher, ``pose``: a (33, 5) float32
      array of x, y, z, visibility, presence, ``seq``, ``person``, ``timestamp_us``)
    - ``audio`` (``room``, ``member``, ``audio``: int16 array, ``seq``,
      ``sample_rate``, ``channels``, ``timestamp_us``), ``audio_gap`` (``seq``),
      ``audio_lost`` (``count``), ``audio_acked`` (``room``, ``seq``: every chunk
      up to it was relayed — the send confirmation; only with ``audio_acks=True``)
    - ``alert`` (``text``: cpu, memory_growth, fps_low, latency_p99, soc_temp;
      ``value``, ``threshold``), ``error`` (``text``: the hub's sentence, ``code``)

    ``room`` is the room's name.
    """

    kind: str
    room: Optional[str] = None
    member: Optional[int] = None
    user: Optional[str] = None
    role: Optional[str] = None
    reason: Optional[str] = None
    text: Optional[str] = None
    code: Optional[str] = None
    members: Optional[list[Member]] = None
    pose: Optional[np.ndarray] = None
    audio: Optional[np.ndarray] = None
    seq: Optional[int] = None
    person: Optional[int] = None
    sample_rate: Optional[int] = None
    channels: Optional[int] = None
    timestamp_us: Optional[int] = None
    attempt: Optional[int] = None
    delay: Optional[float] = None
    hub: Optional[int] = None
    count: Optional[int] = None
    value: Optional[float] = None
    threshold: Optional[float] = None


def _landmark_row(lm: Any) -> tuple[float, float, float, float, float]:
    if isinstance(lm, dict):
        get = lm.get
    else:
        def get(k: str, default: Any = None) -> Any:
            return getattr(lm, k, default)
    try:
        x, y, z = get("x"), get("y"), get("z", 0.0)
        if x is None or y is None:
            raise KeyError("x and y")
    except (KeyError, TypeError) as e:
        raise InvalidPoseError(f"a landmark needs x, y (and z): {lm!r} ({e})") from None
    vis = get("visibility", 1.0)
    pres = get("presence", 1.0)
    return (
        float(x),
        float(y),
        float(z if z is not None else 0.0),
        float(vis if vis is not None else 1.0),
        float(pres if pres is not None else 1.0),
    )


def to_landmarks(pose: Any, person: int = 0) -> np.ndarray:
    """A pose as the engine takes it: a C-contiguous float32 array of shape
    (33, 5) (or (33, 4), presence then taken as 1).

    Accepted: a numpy array (or anything array-like) of 33×4 or 33×5; a
    MediaPipe Tasks ``PoseLandmarkerResult`` (``person`` picks one of its
    poses); a legacy ``mp.solutions.pose`` result (``.pose_landmarks``); a
    ``NormalizedLandmarkList`` (``.landmark``); a list of 33 landmarks (objects
    with ``x``, ``y``, ``z``, ``visibility``, ``presence``) or of 33 dicts with
    those keys (``z`` 0, ``visibility`` and ``presence`` 1 when missing).
    Raises :class:`InvalidPoseError` for anything else, and for a result with
    no pose in it.
    """
    if isinstance(pose, np.ndarray):
        arr = pose
    else:
        if hasattr(pose, "pose_landmarks"):  # a MediaPipe result (Tasks or legacy)
            lms = pose.pose_landmarks
            if lms is None or (isinstance(lms, (list, tuple)) and len(lms) <= person):
                raise InvalidPoseError("the MediaPipe result holds no pose (nobody in view)")
            pose = lms[person] if isinstance(lms, (list, tuple)) else lms
        if hasattr(pose, "landmark"):  # NormalizedLandmarkList
            pose = pose.landmark
        if isinstance(pose, (list, tuple)) or hasattr(pose, "__len__") and not isinstance(pose, (str, bytes)):
            seq = list(pose)
            if seq and not isinstance(seq[0], (list, tuple, np.ndarray, float, int)):
                if len(seq) != LANDMARK_COUNT:
                    raise InvalidPoseError(f"a pose is {LANDMARK_COUNT} landmarks, not {len(seq)}")
                return np.array([_landmark_row(lm) for lm in seq], dtype=np.float32)
            try:
                arr = np.asarray(seq, dtype=np.float32)
            except (TypeError, ValueError) as e:
                raise InvalidPoseError(f"not a pose: {e}") from None
        else:
            raise InvalidPoseError(f"not a pose: {type(pose).__name__}")
    if arr.ndim != 2 or arr.shape[0] != LANDMARK_COUNT or arr.shape[1] not in (4, 5):
        raise InvalidPoseError(
            f"a pose is an array of shape (33, 4) or (33, 5), not {tuple(arr.shape)}"
        )
    if arr.dtype != np.float32 or not arr.flags.c_contiguous:
        try:
            arr = np.ascontiguousarray(arr, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidPoseError(f"not a pose: {e}") from None
    return arr


def _priority(p: Union[int, str]) -> int:
    """The seed's 0–10 priority (5 the usual) as the engine's byte: 5 → 128
    (normal), 8 → 204 (above high, 192), 2 → 51 (below low, 64)."""
    if isinstance(p, str):
        named = {"low": 64, "normal": 128, "high": 192}
        if p not in named:
            raise ValueError(f"priority {p!r}: use 0 to 10, or 'low', 'normal', 'high'")
        return named[p]
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p <= 10:
        raise ValueError(f"priority {p!r}: use an integer 0 (lowest) to 10 (highest); 5 is normal")
    return min(255, int(p) * 128 // 5)


class SyntheticPose:
    """A synthetic person walking and waving (the engine's own test skeleton),
    for trying things out without a camera::

        source = poselink.SyntheticPose(seed=1, motion="wave", fps=30)
        landmarks, ts_us = source.next()     # (33, 5) float32, capture time from 0
    """

    def __init__(self, seed: int = 0, motion: str = "mixed", fps: float = 30.0, jitter: float = 0.002):
        self._src = _native.NativeSynthetic(seed, motion, fps, jitter)

    def next(self) -> tuple[np.ndarray, int]:
        raw, ts = self._src.next_frame()
        return np.frombuffer(raw, dtype=np.float32).reshape(LANDMARK_COUNT, 5), ts

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        while True:
            yield self.next()


def _now_us() -> int:
    return time.monotonic_ns() // 1000


class Engine:
    """A poselink edge engine: one background thread (Rust) that owns the
    connection to the hub.

    ``Engine(hubs, token=None, **settings)`` starts it; use it as a context
    manager (or call :meth:`close`). ``hubs`` is the hub's URL
    (``"ws://host:7700/"``, or ``"wss://host:7700/"`` for TLS), or a list of
    up to 8 URLs (or one string of them separated by commas) in failover order:
    when its hub dies the engine moves to the next one, rejoins its rooms there
    and replays the unacknowledged audio (all ``ws://`` or all ``wss://``; the
    ``connected`` event's ``hub`` is the index of the hub). ``token`` is
    the JWT the hub's operator minted (``None`` for a hub run with ``--dev``).

    Settings (all optional): ``client`` (a name for the hub's logs),
    ``ca_file`` (for ``wss://``: a PEM file of CAs to trust besides the
    system's),
    ``bandwidth_limit`` (bytes/s, 0 none), ``audio_acks`` (``audio_acked``
    events), ``heartbeat_ms``, ``reconnect_min_ms``, ``reconnect_max_ms``,
    ``connect_timeout_ms``, ``join_timeout_ms``, ``audio_window_ms``,
    ``playout_delay_ms``, ``max_pose_age_ms``, ``raw_pose``,
    ``keyframe_interval_ms``, ``max_rooms``, ``max_persons``, ``pose_ring``,
    ``audio_ring``, ``queue_capacity``, ``events_capacity``, ``decoders``,
    ``max_senders``, ``system_stats``, and alert thresholds
    ``alert_cpu_percent``, ``alert_memory_growth_mb``, ``alert_fps_below``,
    ``alert_latency_p99_ms``, ``alert_soc_temp_c``; ``audio_codec``
    (``"pcm16"``, the default, or ``"opus"``: the board setting, 8 kbit/s
    speech in 60 ms packets, with ``opus_bitrate`` in bit/s and
    ``opus_packet_ms`` 20, 40 or 60 to change it; with 40 or 60 ms packets
    ``send_audio`` takes 20 ms chunks of 48 kHz mono). An unknown name raises
    ``TypeError``.

    Every method is safe to call from any thread; the ones that wait for the
    engine (joins, members, owner controls, reports, waiting for events,
    close) release the GIL while they wait.
    """

    def __init__(
        self,
        hubs: Union[str, Sequence[str]],
        token: Optional[str] = None,
        *,
        audio_acks: bool = False,
        **settings: Any,
    ) -> None:
        if isinstance(hubs, str):
            hub = hubs
        else:
            hubs = list(hubs)
            if not hubs or not all(isinstance(h, str) for h in hubs):
                raise ValueError("hubs: give a hub URL or a non-empty list of hub URLs")
            hub = ",".join(hubs)
        unknown = set(settings) - _SETTINGS
        if unknown:
            raise TypeError(f"unknown setting(s) {sorted(unknown)} (see help(poselink.Engine))")
        self.hub = hub
        self._native = _native.NativeEngine(hub, token or "", settings)
        self._native.set_audio_ack_events(bool(audio_acks))
        self._lock = threading.Lock()
        self._rooms: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._pose_seq: dict[tuple[str, int], int] = {}
        self._audio_seq: dict[str, int] = {}
        self._listeners: list[tuple[Callable[[Event], Any], Optional[frozenset[str]]]] = []
        self._dispatcher: Optional[threading.Thread] = None
        self._closed = False

    # ---- life -----------------------------------------------------------------

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> dict[str, int]:
        """Stops the engine: what is queued is sent, unacknowledged audio gets up
        to a second, the connection is closed; waits for it (GIL released) and
        returns the final counters. Calling it again does no harm."""
        self._closed = True
        counters = dict(self._native.close())
        d = self._dispatcher
        if d is not None and d is not threading.current_thread():
            d.join(timeout=5)
        return counters

    @property
    def connected(self) -> bool:
        """Whether a session with the hub is open now."""
        return self._native.is_connected()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the engine stopped)."""
        return self._native.is_closed()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        """Waits up to ``timeout`` seconds for a session; returns whether one is open."""
        deadline = time.monotonic() + timeout
        while not self._native.is_connected():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    # ---- rooms ----------------------------------------------------------------

    def _room_id(self, room: Union[str, Room]) -> int:
        name = room.name if isinstance(room, Room) else room
        with self._lock:
            rid = self._rooms.get(name)
        if rid is None:
            if self.closed:
                raise EngineClosedError("the engine has been closed")
            raise NotJoinedError(f"room {name!r} is not joined: call join_room({name!r}) first")
        return rid

    def join_room(self, room: str, role: str = "member", user_id: Optional[str] = None) -> Room:
        """Joins ``room`` as ``role`` ("owner", "member" or "viewer"), waiting for
        the hub's answer (at most ``join_timeout_ms``), and returns the
        :class:`Room` with its members. The engine rejoins it after every
        reconnect until :meth:`leave_room`. ``user_id`` is the seed's argument:
        the user id is the token's; a different one raises ``ValueError``.

        Raises :class:`JoinRefusedError` (the hub said no: the message says
        why), :class:`HubTimeoutError`, ``ValueError`` (a bad name or role, too
        many rooms) or :class:`EngineClosedError`."""
        rid, members = self._native.join(room, role)
        room_obj = Room(room, rid, role, [Member(m, u, r) for (m, u, r) in members])
        with self._lock:
            self._rooms[room] = rid
            self._names[rid] = room
        if user_id is not None and not any(m.user == user_id for m in room_obj.members):
            raise ValueError(
                f"user_id {user_id!r} is not the token's user (the room lists "
                f"{[m.user for m in room_obj.members]})"
            )
        return room_obj

    def leave_room(self, room: Union[str, Room]) -> None:
        """Leaves a room and stops rejoining it (a ``room_left`` event follows)."""
        rid = self._room_id(room)
        self._native.leave(rid)
        name = room.name if isinstance(room, Room) else room
        with self._lock:
            self._rooms.pop(name, None)

    def members(self, room: Union[str, Room]) -> list[Member]:
        """The room's members now, us included, as the engine follows them."""
        return [Member(m, u, r) for (m, u, r) in self._native.members(self._room_id(room))]

    def kick(self, room: Union[str, Room], member: int, reason: str = "") -> None:
        """Owner control: removes ``member`` from the room. Sent at once; the
        hub's verdict comes as a ``member_left`` event (reason ``kicked``) or an
        ``error`` event (``forbidden`` if we are not the owner)."""
        self._native.kick(self._room_id(room), int(member), reason)

    def set_role(self, room: Union[str, Room], member: int, role: str) -> None:
        """Owner control: gives ``member`` another role (no more than its token
        grants); every member gets a ``role_changed`` event, a refusal an ``error``."""
        self._native.set_role(self._room_id(room), int(member), role)

    def close_room(self, room: Union[str, Room], reason: str = "") -> None:
        """Owner control: closes the room for everyone (``room_left`` with reason
        ``room_closed``), or an ``error`` event if we may not."""
        self._native.close_room(self._room_id(room), reason)

    # ---- sending --------------------------------------------------------------

    def send_pose_data(
        self,
        pose: Any,
        room: Union[str, Room],
        priority: Union[int, str] = 5,
        *,
        person: int = 0,
        timestamp_us: Optional[int] = None,
    ) -> bool:
        """Hands one pose frame to the engine (the seed's ``send_pose_data``).

        ``pose``: anything :func:`to_landmarks` takes — a MediaPipe result or
        landmark list, a numpy array of 33×4 or 33×5, a list of dicts.
        ``priority``: 0 to 10 (5 normal; the seed's scale) or "low" / "normal" /
        "high". ``person``: which person of the camera (its own stream).
        ``timestamp_us``: the capture time on ``time.monotonic_ns() // 1000``'s
        clock (default: now).

        Never blocks: validated, copied once into the engine's ring, returns
        ``True``. A wrong shape, NaN or a value out of range raises
        :class:`InvalidPoseError` (the message names the landmark); a room not
        joined :class:`NotJoinedError`; a closed engine :class:`EngineClosedError`.
        """
        arr = to_landmarks(pose, person)
        rid = self._room_id(room)
        name = room.name if isinstance(room, Room) else room
        key = (name, person)
        with self._lock:
            seq = self._pose_seq.get(key, 0) + 1
            self._pose_seq[key] = seq
        ts = _now_us() if timestamp_us is None else int(timestamp_us)
        self._native.send_pose(rid, arr, arr.shape[1], seq, person, ts, _priority(priority))
        return True

    def send_audio(
        self,
        samples: Any,
        room: Union[str, Room],
        *,
        sample_rate: int = 48_000,
        channels: int = 1,
        timestamp_us: Optional[int] = None,
        priority: Union[int, str] = 8,
    ) -> int:
        """Hands PCM16 audio to the engine: an int16 array (interleaved when
        stereo) of any length, cut into chunks of at most 960 samples (20 ms of
        48 kHz mono) numbered without gaps per room. Audio is reliable: kept
        until the hub acknowledges it and replayed after a reconnect. Returns
        the number of chunks handed over. Never blocks; a full ring raises
        :class:`RingFullError` (the chunks before it were taken)."""
        pcm = np.asarray(samples)
        if pcm.dtype != np.int16:
            raise InvalidAudioError(f"audio is int16 PCM, not {pcm.dtype}")
        pcm = np.ascontiguousarray(pcm.reshape(-1))
        if pcm.size == 0:
            raise InvalidAudioError("no samples")
        if channels not in (1, 2) or pcm.size % channels:
            raise InvalidAudioError(f"{pcm.size} samples do not make {channels}-channel frames")
        rid = self._room_id(room)
        name = room.name if isinstance(room, Room) else room
        step = AUDIO_CHUNK_SAMPLES - AUDIO_CHUNK_SAMPLES % channels
        ts0 = _now_us() if timestamp_us is None else int(timestamp_us)
        p = _priority(priority)
        n = 0
        for start in range(0, pcm.size, step):
            chunk = pcm[start : start + step]
            with self._lock:
                seq = self._audio_seq.get(name, 0) + 1
                self._audio_seq[name] = seq
            ts = ts0 + (start // channels) * 1_000_000 // sample_rate
            self._native.send_audio(rid, chunk, channels, sample_rate, seq, ts, p)
            n += 1
        return n

    def set_bandwidth_limit(self, bytes_per_sec: Optional[int]) -> None:
        """Limits what the engine sends (bytes per second; ``None`` or 0: no
        limit). Pose frames are thinned to fit; audio is kept."""
        self._native.set_bandwidth_limit(int(bytes_per_sec or 0))

    # ---- monitoring -----------------------------------------------------------

    def get_performance_metrics(self) -> dict[str, float]:
        """The seed's ``get_performance_metrics()``: name → value over the
        monitor's last ten seconds — ``latency_*_ms`` (round trip to the hub),
        ``fps`` (pose frames sent), ``cpu_percent``, ``memory_mb``,
        ``memory_growth_mb``, ``bytes_out_per_s``, ``queue_depth``, ``drops``,
        ``errors``, ``reconnects``, ``success_rate``, ... — and the engine's
        running totals (``poses_sent``, ``bytes_sent``, ``audio_received``, ...).
        A value not measured yet is left out."""
        metrics, _ = self._native.performance()
        out: dict[str, float] = {f"total_{k}": float(v) for k, v in self._native.counters()}
        out.update({k: float(v) for k, v in metrics})
        return out

    def performance_report(self) -> dict[str, Any]:
        """The performance report: latency (avg/p50/p95/p99/max, ms), fps,
        resource use (CPU %, memory MB, growth), throughput, reliability
        (success and error rates, drops and errors by kind)."""
        _, report = self._native.performance()
        return json.loads(report)

    def counters(self) -> dict[str, int]:
        """The engine's running totals (lock-free, cheap: call it per frame if you like)."""
        return dict(self._native.counters())

    # ---- events ---------------------------------------------------------------

    def _event(self, t: tuple) -> Event:
        kind, rid, member, a, b, c = t
        room = self._names.get(rid) if kind not in ("connected", "disconnected", "reconnecting", "alert", "error", "other") else None
        if kind == "pose":
            seq, person = b
            pose = np.frombuffer(a, dtype=np.float32).reshape(LANDMARK_COUNT, 5)
            return Event(kind, room, member, pose=pose, seq=seq, person=person, timestamp_us=c)
        if kind == "audio":
            seq, rate, ch = b
            return Event(kind, room, member, audio=np.frombuffer(a, dtype=np.int16), seq=seq,
                         sample_rate=rate, channels=ch, timestamp_us=c)
        if kind == "connected":
            return Event(kind, member=member, hub=a)
        if kind == "disconnected":
            return Event(kind, text=a)
        if kind == "reconnecting":
            return Event(kind, attempt=a, delay=b)
        if kind in ("room_joined", "room_restored"):
            return Event(kind, room, members=[Member(m, u, r) for (m, u, r) in a])
        if kind == "room_left":
            return Event(kind, room, reason=a)
        if kind == "member_joined":
            return Event(kind, room, member, user=a, role=b)
        if kind == "member_left":
            return Event(kind, room, member, reason=a)
        if kind == "role_changed":
            return Event(kind, room, member, role=a)
        if kind in ("audio_gap", "audio_acked"):
            return Event(kind, room, member or None, seq=a)
        if kind == "audio_lost":
            return Event(kind, room, count=a)
        if kind == "alert":
            return Event(kind, text=a, value=b, threshold=c)
        if kind == "error":
            return Event(kind, code=a, text=b)
        return Event(kind)

    def poll_event(self, timeout: float = 0.0) -> Optional[Event]:
        """The next event, waiting up to ``timeout`` seconds (GIL released); ``None`` if none."""
        t = self._native.next_event(float(timeout))
        return None if t is None else self._event(t)

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Events as an iterator: every event waiting now (``timeout=None``),
        or, with a timeout, events until none has come for that long."""
        wait = 0.0 if timeout is None else float(timeout)
        while True:
            e = self.poll_event(wait)
            if e is None:
                return
            yield e

    def on_event(self, callback: Callable[[Event], Any], kinds: Optional[Iterable[str]] = None) -> None:
        """Calls ``callback(event)`` for every event (of ``kinds``, if given) on
        a background thread the engine starts at the first call. Once a callback
        is registered, events go to callbacks, not to :meth:`events`. An
        exception in a callback is printed and does not stop the others."""
        with self._lock:
            self._listeners.append((callback, frozenset(kinds) if kinds is not None else None))
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(target=self._dispatch, name="poselink-events", daemon=True)
                self._dispatcher.start()

    def _dispatch(self) -> None:
        import traceback

        while not self._closed:
            try:
                t = self._native.next_event(0.05)
            except PoselinkError:
                return
            if t is None:
                continue
            e = self._event(t)
            with self._lock:
                listeners = list(self._listeners)
            for cb, kinds in listeners:
                if kinds is None or e.kind in kinds:
                    try:
                        cb(e)
                    except Exception:  # a callback's fault is the app's; keep going
                        traceback.print_exc()
