#!/usr/bin/env python3
"""A poselink client in plain Python: JSON mode over any WebSocket library.

It asks the hub for the `poselink.json` subprotocol, so every message is a JSON
object in a text frame (docs/PROTOCOL.md section 16) and no binary codec is
needed. Two modes:

  publish    join a room as a member and send pose frames (MediaPipe-style
             landmarks; here a synthetic waving skeleton — replace `skeleton()`
             with your pose estimator's output) and, with --audio, 20 ms chunks
             of a 440 Hz tone;
  subscribe  join a room as a viewer and print what arrives, one JSON line per
             pose or audio message (with --out FILE, write them there).

Requires Python 3.9+ and the `websockets` package (pip install websockets).
A `wss://` hub (one with a TLS certificate) works the same; give --ca-file for a
private CA or a self-signed certificate (the system's roots are trusted too).

    python3 examples/python/json_client.py publish --hub ws://127.0.0.1:7700/ --room r1 --frames 300
    python3 examples/python/json_client.py subscribe --hub ws://127.0.0.1:7700/ --room r1 --frames 100

With MediaPipe, the landmarks of a result map one to one:

    landmarks = [{"x": l.x, "y": l.y, "z": l.z, "visibility": l.visibility,
                  "presence": l.presence} for l in result.pose_landmarks[0]]
    ws.send(json.dumps({"type": "pose", "room": room, "landmarks": landmarks}))
"""

import argparse
import json
import math
import sys
import time

try:
    from websockets.sync.client import connect
except ImportError:  # pragma: no cover - a clear message instead of a traceback
    sys.exit("this example needs the websockets package (>= 12): pip install websockets")

SUBPROTOCOL = "poselink.json"


def skeleton(t):
    """33 BlazePose landmarks of a figure waving its right arm at time t (s)."""
    cx, cy = 0.5, 0.5
    wave = math.sin(t * 4.0) * 0.08
    points = {
        0: (cx, cy - 0.30),  # nose
        11: (cx - 0.08, cy - 0.18), 12: (cx + 0.08, cy - 0.18),  # shoulders
        13: (cx - 0.14, cy - 0.05), 14: (cx + 0.16, cy - 0.28),  # elbows
        15: (cx - 0.16, cy + 0.08), 16: (cx + 0.20 + wave, cy - 0.40),  # wrists
        23: (cx - 0.06, cy + 0.10), 24: (cx + 0.06, cy + 0.10),  # hips
        25: (cx - 0.07, cy + 0.28), 26: (cx + 0.07, cy + 0.28),  # knees
        27: (cx - 0.07, cy + 0.45), 28: (cx + 0.07, cy + 0.45),  # ankles
    }
    out = []
    for i in range(33):
        # Landmarks not placed above sit near the nearest placed one.
        x, y = points.get(i, points[0] if i < 11 else points[min(points, key=lambda k: abs(k - i))])
        out.append({"x": round(x, 5), "y": round(y, 5), "z": round(-0.1 + 0.001 * i, 5),
                    "visibility": 0.9 if i in points else 0.5, "presence": 1.0})
    return out


def tone(seq, rate=48000, n=960):
    """One 20 ms chunk of a 440 Hz tone as 16-bit integers."""
    start = (seq - 1) * n
    return [int(8000 * math.sin(2 * math.pi * 440 * (start + k) / rate)) for k in range(n)]


def session(ws, args, role):
    """Says hello and joins the room."""
    if ws.subprotocol != SUBPROTOCOL:
        sys.exit(f"the hub at {args.hub} did not accept JSON mode (no {SUBPROTOCOL} subprotocol)")
    ws.send(json.dumps({"type": "hello", "token": args.token, "client": "json_client.py/1.0"}))
    expect(ws, "welcome", args.timeout)
    ws.send(json.dumps({"type": "join", "room": args.room, "role": role}))
    expect(ws, "room_snapshot", args.timeout)


def drain(ws):
    """Reads what the hub sent meanwhile (acks, member events, errors), without
    waiting. A client must keep reading: the library stops reading the socket
    when its queue is full, and would then miss even the hub's close frame."""
    while True:
        try:
            msg = json.loads(ws.recv(timeout=0))
        except TimeoutError:
            return
        if msg["type"] == "error":
            print(f"hub error: {msg['name']}: {msg['reason']}", file=sys.stderr)


def expect(ws, kind, timeout):
    """Waits for a message of `kind`; exits with the hub's reason on an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg["type"] == kind:
            return msg
        if msg["type"] == "error":
            sys.exit(f"the hub refused: {msg['name']}: {msg['reason']}")
    sys.exit(f"no {kind} from the hub within {timeout} s")


def publish(ws, args):
    session(ws, args, "member")
    period = 1.0 / args.fps
    sent = []
    start = time.monotonic()
    for seq in range(1, args.frames + 1):
        frame = {"type": "pose", "room": args.room, "seq": seq,
                 "timestamp_us": int(time.monotonic() * 1e6), "landmarks": skeleton(seq * period)}
        ws.send(json.dumps(frame))
        sent.append(frame)
        if args.audio and seq % max(1, round(args.fps / 50)) == 0:
            ws.send(json.dumps({"type": "audio", "room": args.room, "seq": len(sent),
                                "sample_rate": 48000, "samples": tone(len(sent))}))
        drain(ws)
        time.sleep(max(0.0, start + seq * period - time.monotonic()))
    if args.sent:
        with open(args.sent, "w") as f:
            for frame in sent:
                f.write(json.dumps(frame) + "\n")
    # Let the last frames leave before closing.
    time.sleep(0.2)
    drain(ws)
    print(f"sent {len(sent)} pose frames to room {args.room}")


def subscribe(ws, args):
    session(ws, args, "viewer")
    out = open(args.out, "w") if args.out else sys.stdout
    got = 0
    deadline = time.monotonic() + args.timeout
    while got < args.frames and time.monotonic() < deadline:
        try:
            msg = json.loads(ws.recv(timeout=0.5))
        except TimeoutError:
            continue
        if msg["type"] == "pose":
            got += 1
            out.write(json.dumps(msg) + "\n")
            out.flush()
        elif msg["type"] == "audio" and args.audio:
            out.write(json.dumps(msg) + "\n")
        elif msg["type"] == "error":
            print(f"hub error: {msg['name']}: {msg['reason']}", file=sys.stderr)
    if out is not sys.stdout:
        out.close()
    print(f"received {got} pose frames from room {args.room}", file=sys.stderr)
    return 0 if got >= args.frames else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["publish", "subscribe"])
    p.add_argument("--hub", default="ws://127.0.0.1:7700/", help="ws://HOST:PORT/ or wss://HOST:PORT/")
    p.add_argument("--ca-file", help="wss://: a PEM file of CA certificates to trust besides the system's")
    p.add_argument("--room", default="r1")
    p.add_argument("--token", default="", help="a token from `poselink token` (none for a --dev hub)")
    p.add_argument("--frames", type=int, default=300, help="pose frames to send or to wait for")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--audio", action="store_true", help="also send (or print) audio")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the hub")
    p.add_argument("--sent", help="publish: write the frames sent, one JSON line each")
    p.add_argument("--out", help="subscribe: write what arrives here instead of stdout")
    args = p.parse_args()
    tls = None
    if args.hub.startswith("wss://"):
        import ssl

        # The system's roots, plus the CA file; host names are checked.
        tls = ssl.create_default_context()
        if args.ca_file:
            tls.load_verify_locations(cafile=args.ca_file)
    elif args.ca_file:
        p.error("--ca-file is for wss:// hubs")
    with connect(args.hub, subprotocols=[SUBPROTOCOL], open_timeout=10, ssl=tls) as ws:
        if args.mode == "publish":
            publish(ws, args)
            return 0
        return subscribe(ws, args)


if __name__ == "__main__":
    sys.exit(main())
