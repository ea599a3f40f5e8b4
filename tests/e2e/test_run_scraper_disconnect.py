"""A scraper that goes away mid-response (Prometheus giving up on a scrape, a curl killed) is one
DEBUG line in the agent's log, never a traceback: `otel-sysops run` in a subprocess, /metrics asked
for by a client that resets the connection right after its request."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.slow

DEADLINE = 60.0
RESETS = 5


def _scrape(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return int(resp.status)
    except OSError:
        return 0


def _reset_mid_response(port: int) -> None:
    """Ask for /metrics, then close with an RST (linger 0) before reading the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    finally:
        sock.close()


def test_a_scraper_resetting_the_connection_is_one_debug_line_and_no_traceback() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        SYSOPS_INTERVAL="0.5",
        SYSOPS_PROMETHEUS__HOST="127.0.0.1",
        SYSOPS_PROMETHEUS__PORT=str(port),
        SYSOPS_LOG__LEVEL="DEBUG",
        SYSOPS_LOGS__ENABLED="false",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        lines.extend(process.stderr)

    def noticed() -> int:
        """Disconnects the agent has told of so far, quietly or with a traceback."""
        return sum(1 for line in list(lines) if "went away" in line or line.startswith("Traceback"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while _scrape(port) != 200:
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        for done in range(RESETS):
            _reset_mid_response(port)
            # The agent notices on its next write or read of that connection: wait for it.
            deadline = time.monotonic() + DEADLINE
            while noticed() <= done:
                assert time.monotonic() < deadline, "the reset was never noticed:\n" + "".join(lines)
                time.sleep(0.02)
        assert _scrape(port) == 200  # still serving
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(10)
    text = "".join(lines)
    assert "Traceback" not in text, text
    assert "Exception occurred during processing of request" not in text, text
    went = [line for line in lines if "went away" in line]
    assert len(went) == RESETS, text
    assert all(" DEBUG " in line for line in went), text
