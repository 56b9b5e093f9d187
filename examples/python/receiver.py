#!/usr/bin/env python3
"""Print what arrives in a poselink room: one line per second per sender (pose
frames and audio chunks received, the latest nose position), member joins
and leaves as they happen. Joins as a viewer.

    python3 examples/python/receiver.py --hub ws://127.0.0.1:7700/ --room py-demo --seconds 30
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import poselink


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hub", default="ws://127.0.0.1:7700/")
    ap.add_argument("--room", default="py-demo")
    ap.add_argument("--token", default=None)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    with poselink.Engine(args.hub, token=args.token, client="receiver-py") as engine:
        room = engine.join_room(args.room, role="viewer")
        print(f"receiver: in {room.name} with {[(m.member, m.user, m.role) for m in room.members]}")
        poses: dict[int, int] = defaultdict(int)
        chunks: dict[int, int] = defaultdict(int)
        nose: dict[int, tuple[float, float]] = {}
        start = last = time.monotonic()
        while time.monotonic() - start < args.seconds:
            for event in engine.events(timeout=0.1):
                if event.kind == "pose":
                    poses[event.member] += 1
                    x, y = event.pose[0, 0], event.pose[0, 1]  # landmark 0: the nose
                    nose[event.member] = (float(x), float(y))
                elif event.kind == "audio":
                    chunks[event.member] += 1
                elif event.kind in ("member_joined", "member_left", "room_left", "disconnected", "room_restored"):
                    print(f"receiver: {event.kind} member={event.member} {event.user or event.reason or ''}")
                if time.monotonic() - last >= 1.0:
                    break
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                for sender in sorted(set(poses) | set(chunks)):
                    x, y = nose.get(sender, (float("nan"), float("nan")))
                    print(f"receiver: member {sender}: {poses[sender]} poses, {chunks[sender]} audio chunks"
                          f" in the last second; nose at ({x:.3f}, {y:.3f})")
                poses.clear()
                chunks.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
