"""The seed's test plan, against a real hub process: reconnection, data
integrity, latency, bandwidth control, high load, concurrent users. Every
loop is bounded by a count and a deadline; each test records its figures."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

import poselink

COORD_BOUND, SCORE_BOUND = poselink.quantisation_bounds()
# f32 rounding on top of the codec's bound (values up to 2 in magnitude).
EPS = 1e-6


def wait_for(engine: poselink.Engine, kind: str, timeout: float):
    """The first event of `kind` within `timeout` seconds, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        e = engine.poll_event(min(0.05, max(0.0, deadline - time.monotonic())))
        if e is not None and e.kind == kind:
            return e
    return None


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_reconnection_restores_the_room_within_a_second(hub, figure):
    cfg = dict(heartbeat_ms=200, reconnect_min_ms=20, reconnect_max_ms=100, connect_timeout_ms=500)
    with poselink.Engine(hub.url, client="cam", **cfg) as cam:
        cam.join_room("restore")
        assert wait_for(cam, "connected", 2) is not None
        hub.kill()
        assert wait_for(cam, "disconnected", 3) is not None, "the engine noticed the hub's death"
        time.sleep(0.3)  # down for a while: reconnects fail meanwhile
        hub.start()  # same port; returns once it listens
        restored = wait_for(cam, "room_restored", 3)
        took = time.monotonic() - hub.ready_at
        assert restored is not None, "the room was restored"
        assert cam.connected
        assert took < 1.0, f"restored {took:.3f} s after the hub was back"
        assert [m.user for m in cam.members("restore")] == [restored.members[0].user]
        # and it carries frames again
        src = poselink.SyntheticPose(seed=3)
        for _ in range(5):
            cam.send_pose_data(src.next()[0], "restore")
        time.sleep(0.1)
        assert cam.counters()["poses_sent"] >= 1
    figure("reconnection: room restored after hub restart", f"{took * 1000:.0f} ms (limit 1000)")


def test_data_integrity_pose_within_bound_audio_exact(hub, figure):
    with poselink.Engine(hub.url, client="cam") as cam, poselink.Engine(hub.url, client="viewer") as viewer:
        cam.join_room("integrity")
        viewer.join_room("integrity", role="viewer")
        src = poselink.SyntheticPose(seed=7, motion="mixed")
        sent: dict[int, np.ndarray] = {}
        rng = np.random.default_rng(1)
        chunks = [rng.integers(-32768, 32767, 960, dtype=np.int16) for _ in range(50)]
        for i in range(150):
            lm, _ = src.next()
            cam.send_pose_data(lm, "integrity")
            sent[i + 1] = lm.copy()
            if i < len(chunks):
                cam.send_audio(chunks[i], "integrity")
            time.sleep(0.004)
        poses: dict[int, np.ndarray] = {}
        audio: dict[int, np.ndarray] = {}
        deadline = time.monotonic() + 5
        while (len(audio) < len(chunks) or 150 not in poses) and time.monotonic() < deadline:
            e = viewer.poll_event(0.05)
            if e is None:
                continue
            if e.kind == "pose":
                poses[e.seq] = e.pose.copy()
            elif e.kind == "audio":
                assert e.seq not in audio, "no chunk twice"
                audio[e.seq] = e.audio.copy()
        # Pose: every frame that arrived is within the codec's bound, value for value.
        assert len(poses) >= 100, f"only {len(poses)} of 150 frames arrived"
        worst_xyz = worst_score = 0.0
        for seq, got in poses.items():
            d = np.abs(got - sent[seq])
            worst_xyz = max(worst_xyz, float(d[:, :3].max()))
            worst_score = max(worst_score, float(d[:, 3:].max()))
        assert worst_xyz <= COORD_BOUND + EPS, worst_xyz
        assert worst_score <= SCORE_BOUND + EPS, worst_score
        # Audio: every chunk, every sample, exactly.
        assert sorted(audio) == list(range(1, len(chunks) + 1))
        for seq, pcm in audio.items():
            assert np.array_equal(pcm, chunks[seq - 1]), f"chunk {seq} differs"
    figure("integrity: pose frames received / sent", f"{len(poses)} / 150")
    figure("integrity: worst x/y/z error", f"{worst_xyz:.2e} (bound {COORD_BOUND:.2e})")
    figure("integrity: worst visibility/presence error", f"{worst_score:.2e} (bound {SCORE_BOUND:.2e})")
    figure("integrity: audio chunks exact", f"{len(audio)} / {len(chunks)} (48 000 samples)")


def test_latency_of_send_pose_data(hub, figure):
    with poselink.Engine(hub.url, client="cam") as cam:
        cam.join_room("latency")
        src = poselink.SyntheticPose(seed=2)
        frames = [src.next()[0] for _ in range(100)]
        times = []
        for lm in frames:
            t0 = time.perf_counter_ns()
            assert cam.send_pose_data(lm, "latency") is True
            times.append(time.perf_counter_ns() - t0)
            time.sleep(0.002)
    us = np.array(times) / 1000
    p50, p99, worst = np.percentile(us, 50), np.percentile(us, 99), us.max()
    print(f"send_pose_data: p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {worst:.1f} µs")
    assert worst < 50_000, f"a call took {worst:.0f} µs"
    figure("latency: send_pose_data p50 / p99 / max", f"{p50:.1f} / {p99:.1f} / {worst:.1f} µs (limit 50 ms)")


def test_bandwidth_limit_holds_with_pose_and_audio(hub, figure):
    limit = 1_000_000
    with poselink.Engine(hub.url, client="cam", raw_pose=True, max_persons=8, bandwidth_limit=limit) as cam:
        cam.join_room("bandwidth")
        src = poselink.SyntheticPose(seed=4)
        frames = [src.next()[0] for _ in range(64)]
        tone = (np.sin(np.arange(960) / 10) * 8000).astype(np.int16)
        # Offered: 8 persons × 250 Hz raw pose (≈ 1.4 MB/s) + 48 kHz mono audio (≈ 97 kB/s).
        start = time.monotonic()
        measured_from = start + 1.0  # past the bucket's burst
        b0 = t0 = None
        next_audio = start
        i = 0
        while True:
            now = time.monotonic()
            if b0 is None and now >= measured_from:
                b0, t0 = cam.counters()["bytes_sent"], now
            if now >= measured_from + 5.0:
                break
            for person in range(8):
                cam.send_pose_data(frames[i % 64], "bandwidth", person=person)
            i += 1
            while next_audio <= now:
                cam.send_audio(tone, "bandwidth")
                next_audio += 0.02
            time.sleep(0.004)
            assert i < 5000, "bounded"
        c = cam.counters()
        rate = (c["bytes_sent"] - b0) / (time.monotonic() - t0)
        offered = i * 8 * 677 / (time.monotonic() - start) + 50 * 1940
        assert c["audio_lost"] == 0
        assert c["drops_superseded"] + c["drops_stale"] > 0, "the limit thinned the pose stream"
    print(f"bandwidth: {rate:.0f} B/s over 5 s with a limit of {limit} (offered ≈ {offered:.0f} B/s)")
    assert abs(rate - limit) <= 0.10 * limit, f"{rate:.0f} B/s"
    figure("bandwidth: sent with a 1 MB/s limit (5 s)", f"{rate / 1e6:.3f} MB/s (offered {offered / 1e6:.2f} MB/s)")


def test_high_load_cpu_and_memory(hub, figure):
    with poselink.Engine(hub.url, client="cam") as cam:
        cam.join_room("load")
        src = poselink.SyntheticPose(seed=5)
        frames = [src.next()[0] for _ in range(100)]
        tone = np.zeros(960, dtype=np.int16)
        for lm in frames[:10]:  # warm-up
            cam.send_pose_data(lm, "load")
        rss0 = rss_mb()
        cpu0, wall0 = time.process_time(), time.monotonic()
        for i in range(1000):  # 1000 pose frames at 400 Hz, audio in real time
            cam.send_pose_data(frames[i % 100], "load")
            if i % 8 == 0:
                cam.send_audio(tone, "load")
            time.sleep(0.0025)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0) * 100
        growth = rss_mb() - rss0
        c = cam.counters()
    print(f"high load: process CPU {cpu:.1f} %, memory growth {growth:.2f} MB, {c['poses_sent']} frames sent")
    assert c["poses_submitted"] >= 1010
    assert cpu < 30.0, f"CPU {cpu:.1f} %"
    assert growth < 100.0, f"memory grew {growth:.1f} MB"
    figure("high load: process CPU over 1000 sends (400 Hz)", f"{cpu:.1f} % (limit 30)")
    figure("high load: memory growth over 1000 sends", f"{growth:.2f} MB (limit 100)")


def test_fifty_concurrent_users(hub, figure):
    n = 50
    t0 = time.monotonic()
    viewer = poselink.Engine(hub.url, client="viewer")
    engines = [poselink.Engine(hub.url, client=f"user-{k}", events_capacity=64) for k in range(n)]
    try:
        viewer.join_room("crowd", role="viewer")
        for e in engines:
            e.join_room("crowd")
        joined = time.monotonic() - t0
        deadline = time.monotonic() + 3  # the last joins reach the viewer as events
        while len(viewer.members("crowd")) < n + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(viewer.members("crowd")) == n + 1
        src = poselink.SyntheticPose(seed=6)
        frames = [src.next()[0] for _ in range(10)]
        for lm in frames:
            for e in engines:
                e.send_pose_data(lm, "crowd")
            time.sleep(0.01)
        senders: set[int] = set()
        deadline = time.monotonic() + 5
        while len(senders) < n and time.monotonic() < deadline:
            ev = viewer.poll_event(0.05)
            if ev is not None and ev.kind == "pose":
                senders.add(ev.member)
        assert len(senders) == n, f"poses from {len(senders)} of {n} users"
        assert all(e.connected for e in engines)
    finally:
        for e in engines:
            e.close()
        viewer.close()
    figure("concurrent users: engines joined and heard", f"{n} in {joined:.2f} s")
