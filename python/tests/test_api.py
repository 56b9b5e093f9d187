"""The Python surface: what send_pose_data accepts (MediaPipe results and
landmark lists, numpy arrays, lists of dicts), bad input as specific
exceptions with the engine's message, owner controls, callbacks, and a closed
engine."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

import poselink


def landmarks() -> np.ndarray:
    return poselink.SyntheticPose(seed=11).next()[0]


def mp_landmarks(arr: np.ndarray) -> list:
    return [SimpleNamespace(x=r[0], y=r[1], z=r[2], visibility=r[3], presence=r[4]) for r in arr]


def test_every_pose_form_converts_to_the_same_array():
    lm = landmarks()
    expect = np.asarray(lm, dtype=np.float32)
    tasks_result = SimpleNamespace(pose_landmarks=[mp_landmarks(lm)])
    legacy_result = SimpleNamespace(pose_landmarks=SimpleNamespace(landmark=mp_landmarks(lm)))
    dicts = [dict(x=r[0], y=r[1], z=r[2], visibility=r[3], presence=r[4]) for r in lm]
    for form in (lm, lm.astype(np.float64), lm.tolist(), tasks_result, legacy_result, mp_landmarks(lm), dicts):
        got = poselink.to_landmarks(form)
        assert got.shape == (33, 5) and got.dtype == np.float32
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-7)
    four = poselink.to_landmarks(lm[:, :4])
    assert four.shape == (33, 4)
    no_scores = poselink.to_landmarks([dict(x=r[0], y=r[1], z=r[2]) for r in lm])
    assert (no_scores[:, 3:] == 1.0).all()


def test_bad_input_raises_specific_errors(hub):
    lm = landmarks()
    with poselink.Engine(hub.url) as e:
        e.join_room("bad")
        cases = [
            (np.zeros((33, 3), np.float32), poselink.InvalidPoseError, "(33, 3)"),
            (np.zeros((32, 5), np.float32), poselink.InvalidPoseError, "(32, 5)"),
            ([{"y": 0.1}] * 33, poselink.InvalidPoseError, "x and y"),
            ("a string", poselink.InvalidPoseError, "not a pose"),
            (SimpleNamespace(pose_landmarks=[]), poselink.InvalidPoseError, "no pose"),
        ]
        nan = lm.copy(); nan[5, 0] = np.nan
        far = lm.copy(); far[7, 1] = 3.5
        vis = lm.copy(); vis[2, 3] = 1.5
        cases += [
            (nan, poselink.InvalidPoseError, "landmark 5 x"),
            (far, poselink.InvalidPoseError, "landmark 7 y"),
            (vis, poselink.InvalidPoseError, "landmark 2"),
        ]
        for pose, exc, words in cases:
            with pytest.raises(exc) as info:
                e.send_pose_data(pose, "bad")
            assert words in str(info.value), str(info.value)
            assert isinstance(info.value, poselink.PoselinkError)
        with pytest.raises(poselink.NotJoinedError, match="never"):
            e.send_pose_data(lm, "never")
        with pytest.raises(poselink.InvalidAudioError, match="int16"):
            e.send_audio(np.zeros(960, np.float32), "bad")
        with pytest.raises(ValueError, match="priority"):
            e.send_pose_data(lm, "bad", priority=11)
        with pytest.raises(ValueError, match="role"):
            e.join_room("other", role="boss")
    with pytest.raises(poselink.EngineClosedError):
        e.send_pose_data(lm, "bad")
    with pytest.raises(poselink.EngineClosedError):
        e.set_bandwidth_limit(1000)
    with pytest.raises(TypeError, match="bandwith"):
        poselink.Engine(hub.url, bandwith_limit=5)


def test_owner_controls_and_member_lists(hub):
    with poselink.Engine(hub.url, client="boss") as boss, poselink.Engine(hub.url, client="cam") as cam:
        room = boss.join_room("stage", role="owner")
        assert [m.role for m in room.members] == ["owner"]
        joined = cam.join_room("stage")
        assert sorted(m.role for m in joined.members) == ["member", "owner"]
        cam_id = next(m.member for m in joined.members if m.role == "member")
        boss.set_role("stage", cam_id, "viewer")
        ev = next((x for x in cam.events(timeout=1) if x.kind == "role_changed"), None)
        assert ev is not None and (ev.member, ev.role) == (cam_id, "viewer")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and {m.member: m.role for m in boss.members("stage")}.get(cam_id) != "viewer":
            time.sleep(0.01)
        assert {m.member: m.role for m in boss.members("stage")}[cam_id] == "viewer"
        boss.kick("stage", cam_id, "bye")
        ev = next((x for x in cam.events(timeout=1) if x.kind == "room_left"), None)
        assert ev is not None and ev.reason == "kicked" and ev.room == "stage"
        with pytest.raises(poselink.NotJoinedError):
            cam.members("stage")
        boss.close_room("stage", "done")
        ev = next((x for x in boss.events(timeout=1) if x.kind == "room_left"), None)
        assert ev is not None and ev.reason == "room_closed"


def test_callbacks_and_acknowledged_audio(hub):
    got: list[poselink.Event] = []
    done = threading.Event()

    def on_ack(ev: poselink.Event) -> None:
        got.append(ev)
        if ev.seq == 10:
            done.set()

    with poselink.Engine(hub.url, audio_acks=True) as e:
        e.join_room("acks")
        e.on_event(on_ack, kinds={"audio_acked"})
        assert e.send_audio(np.zeros(9600, np.int16), "acks") == 10
        assert done.wait(5), [x.seq for x in got]
    seqs = [x.seq for x in got]
    assert seqs == sorted(seqs) and seqs[-1] == 10 and all(x.room == "acks" for x in got)


def test_metrics_and_report(hub):
    with poselink.Engine(hub.url, heartbeat_ms=100) as e:
        e.join_room("perf")
        src = poselink.SyntheticPose(seed=9)
        for _ in range(40):
            e.send_pose_data(src.next()[0], "perf")
            time.sleep(0.02)
        m = e.get_performance_metrics()
        assert m["total_poses_sent"] >= 30
        assert 10 < m["fps"] < 80
        assert "latency_p99_ms" in m and m["latency_p99_ms"] < 50
        r = e.performance_report()
        assert r["latency"]["count"] >= 1 and r["reliability"]["success_rate"] > 0.5


def test_threads_share_an_engine_and_waits_release_the_gil(hub):
    with poselink.Engine(hub.url, client="cam") as cam, poselink.Engine(hub.url, client="viewer") as viewer:
        cam.join_room("threads")
        viewer.join_room("threads", role="viewer")
        lm = landmarks()
        errors: list[BaseException] = []

        def send(person: int) -> None:
            try:
                for _ in range(200):
                    cam.send_pose_data(lm, "threads", person=person)
                    time.sleep(0.001)
            except BaseException as e:  # surfaced below
                errors.append(e)

        senders = [threading.Thread(target=send, args=(p,)) for p in range(4)]
        for t in senders:
            t.start()
        # Meanwhile a wait on an engine with nothing to say must not hold the GIL:
        # this thread keeps running while another waits for a second.
        idle = poselink.Engine(hub.url, client="idle")
        assert idle.wait_connected(5)
        list(idle.events(timeout=0.1))  # nothing left to say
        waiter = threading.Thread(target=lambda: idle.poll_event(1.0))
        waiter.start()
        time.sleep(0.05)  # the waiter is inside poll_event now
        spins, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 0.3:
            spins += 1
        # Had the wait held the GIL, this thread would only get here after it ended.
        waited_meanwhile = waiter.is_alive()
        waiter.join(5)
        idle.close()
        for t in senders:
            t.join(10)
        assert not errors, errors
        assert waited_meanwhile, "a thread ran Python while another waited in the engine"
        assert spins > 1000
        c = cam.counters()
        assert c["poses_submitted"] == 800
        persons = set()
        deadline = time.monotonic() + 3
        while len(persons) < 4 and time.monotonic() < deadline:
            e = viewer.poll_event(0.05)
            if e is not None and e.kind == "pose":
                persons.add(e.person)
        assert persons == {0, 1, 2, 3}


def test_opus_setting_gathers_chunks_into_60_ms_packets(hub):
    with pytest.raises(ValueError, match="mp3"):
        poselink.Engine(hub.url, audio_codec="mp3")
    with pytest.raises(ValueError, match="20, 40 or 60"):
        poselink.Engine(hub.url, audio_codec="opus", opus_packet_ms=30)
    with pytest.raises(ValueError, match="need audio_codec"):
        poselink.Engine(hub.url, opus_bitrate=8000)
    got: list[poselink.Event] = []
    done = threading.Event()

    def on_ack(ev: poselink.Event) -> None:
        got.append(ev)
        if ev.seq == 3:
            done.set()

    with poselink.Engine(hub.url, audio_codec="opus", audio_acks=True) as e:
        e.join_room("opus")
        e.on_event(on_ack, kinds={"audio_acked"})
        # Chunks 1..10 make packets 0 (1-3), 1, 2 and 3 (10 alone: sent when no
        # chunk follows); acknowledgements name the packets.
        assert e.send_audio(np.zeros(9600, np.int16), "opus") == 10
        assert done.wait(5), [x.seq for x in got]
        with pytest.raises(poselink.InvalidAudioError, match="20 ms"):
            e.send_audio(np.zeros(480, np.int16), "opus")
    seqs = [x.seq for x in got]
    assert seqs == sorted(seqs) and seqs[-1] == 3 and all(x.room == "opus" for x in got)
