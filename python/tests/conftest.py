"""Fixtures of the Python test plan: a real `poselink hub --dev` process on a
loopback port (the binary cargo built; `POSELINK_BIN` names it, else the
newest of target/{ci,release,debug}/poselink), which a test may kill and
start again on the same port; and a table of measured figures printed at the
end of the run, before pytest's summary line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES: list[tuple[str, str]] = []


def hub_binary() -> Path:
    env = os.environ.get("POSELINK_BIN")
    if env:
        return Path(env)
    found = [ROOT / "target" / p / "poselink" for p in ("ci", "release", "debug")]
    found = [p for p in found if p.exists()]
    if not found:
        pytest.fail("no poselink binary: run `cargo build --profile ci --bin poselink` (or set POSELINK_BIN)")
    return max(found, key=lambda p: p.stat().st_mtime)


class Hub:
    """A `poselink hub --dev` process. Media rate limits are raised above the
    defaults (1000 messages/s per connection) so that the bandwidth test's
    offered load is limited by the engine, not refused by the hub."""

    def __init__(self) -> None:
        self.binary = hub_binary()
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.ready_at = 0.0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def start(self) -> None:
        listen = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(self.binary), "hub", "--dev", "--listen", listen, "--print-addr",
             "--rate-messages", "20000", "--rate-bytes", str(64 << 20)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()  # the bound address, once listening
        if not line:
            raise RuntimeError(f"the hub did not start (exit {self.proc.poll()})")
        self.port = int(line.rsplit(":", 1)[1])
        self.ready_at = time.monotonic()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None


@pytest.fixture
def hub():
    h = Hub()
    h.start()
    yield h
    h.stop()


@pytest.fixture
def figure():
    """Records a measured figure: `figure("latency p99", "12.3 µs")`."""

    def record(name: str, value: str) -> None:
        FIGURES.append((name, value))

    return record


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.section("poselink figures (this run)")
        for name, value in FIGURES:
            terminalreporter.write_line(f"{name:<48} {value}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
