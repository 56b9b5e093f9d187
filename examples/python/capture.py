#!/usr/bin/env python3
"""Stream a pose (and audio) into a poselink room with the `poselink` package.

With a webcam and MediaPipe installed (`pip install mediapipe opencv-python`),
each camera frame goes through MediaPipe's BlazePose and its 33 landmarks are
sent; without either, the engine's synthetic person (walking and waving) is
sent instead, so the example runs anywhere. Audio is a 440 Hz tone in 20 ms
chunks (pass --no-audio to leave it out). Once a second it prints the
performance monitor's view; at the end, the performance report.

    pip install ./python                      # the poselink package (maturin builds it)
    poselink hub --dev &                      # a hub on 0.0.0.0:7700 for local trials
    python3 examples/python/capture.py --hub ws://127.0.0.1:7700/ --room r1 --seconds 10
    python3 examples/python/receiver.py --hub ws://127.0.0.1:7700/ --room r1

Options: --camera N (the webcam's index), --synthetic (ignore the webcam),
--token JWT (a secured hub), --fps F (synthetic frame rate).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import poselink


def webcam_source(index: int):
    """Frames from the webcam through MediaPipe BlazePose, or None if either is missing."""
    try:
        import cv2  # type: ignore
        import mediapipe as mp  # type: ignore
    except ImportError:
        return None
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        return None
    pose = mp.solutions.pose.Pose(model_complexity=0)

    def frames():
        while True:
            ok, image = cap.read()
            if not ok:
                return
            ts = time.monotonic_ns() // 1000
            result = pose.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            if result.pose_landmarks is not None:  # nobody in view: nothing to send
                yield result, ts  # send_pose_data takes the MediaPipe result as it is

    return frames()


def synthetic_source(fps: float):
    """The engine's synthetic person, paced at `fps`."""
    source = poselink.SyntheticPose(seed=1, motion="mixed", fps=fps)
    period = 1.0 / fps
    next_at = time.monotonic()
    while True:
        landmarks, _ = source.next()
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
        yield landmarks, time.monotonic_ns() // 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub", default="ws://127.0.0.1:7700/")
    ap.add_argument("--room", default="py-demo")
    ap.add_argument("--token", default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--camera", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--no-audio", action="store_true")
    args = ap.parse_args()

    frames = None if args.synthetic else webcam_source(args.camera)
    what = "the webcam through MediaPipe"
    if frames is None:
        frames = synthetic_source(args.fps)
        what = "the synthetic skeleton"
    tone = (np.sin(2 * np.pi * 440 * np.arange(960) / 48_000) * 8000).astype(np.int16)

    with poselink.Engine(args.hub, token=args.token, client="capture-py") as engine:
        room = engine.join_room(args.room)
        print(f"capture: joined {room.name} with {[m.user for m in room.members]}; streaming {what}")
        start = last_print = time.monotonic()
        next_audio = start
        sent = 0
        for pose, ts in frames:
            try:
                engine.send_pose_data(pose, room, timestamp_us=ts)
                sent += 1
            except poselink.InvalidPoseError as e:  # e.g. a landmark far outside the image
                print(f"capture: frame skipped: {e}", file=sys.stderr)
            now = time.monotonic()
            while not args.no_audio and next_audio <= now:
                engine.send_audio(tone, room)
                next_audio += 0.02
            for event in engine.events():
                if event.kind not in ("pose", "audio", "audio_acked"):
                    print(f"capture: {event.kind} {event.room or ''} {event.text or event.reason or ''}")
            if now - last_print >= 1.0:
                last_print = now
                m = engine.get_performance_metrics()
                keys = ("fps", "latency_p99_ms", "bytes_out_per_s", "cpu_percent", "memory_mb", "drops")
                print("capture: " + "  ".join(f"{k} {m[k]:.2f}" for k in keys if k in m))
            if now - start >= args.seconds:
                break
        print("capture: performance report " + json.dumps(engine.performance_report()))
        counters = engine.close()
    print(f"capture: sent {counters['poses_sent']} pose frames ({sent} handed over) and "
          f"{counters['audio_sent']} audio chunks, {counters['bytes_sent']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
