"""A scraper that goes away mid-response (Prometheus giving up on a scrape, a curl killed) is one
DEBUG line in the agent's log, never a traceback: `otel-sysops run` in a subprocess, /metrics asked
for by a client that resets the connection right after its request."""

from __future__ import annotations

import signal
import socket
import struct
import urllib.request

import pytest

from tests.conftest import Command, clean_env, free_port

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
    agent = Command(
        ["run"],
        clean_env(
            SYSOPS_INTERVAL="0.5",
            SYSOPS_PROMETHEUS__HOST="127.0.0.1",
            SYSOPS_PROMETHEUS__PORT=str(port),
            SYSOPS_LOG__LEVEL="DEBUG",
            SYSOPS_LOGS__ENABLED="false",
        ),
    )

    def noticed() -> int:
        """Disconnects the agent has told of so far, quietly or with a traceback."""
        return sum(1 for line in list(agent.lines) if "went away" in line or line.startswith("Traceback"))

    try:
        agent.wait_for(lambda: _scrape(port) == 200, "/metrics never answered", DEADLINE)
        for done in range(RESETS):
            _reset_mid_response(port)
            # The agent notices on its next write or read of that connection: wait for it.
            agent.wait_for(lambda: noticed() > done, "the reset was never noticed", DEADLINE)  # noqa: B023 (used now)
        assert _scrape(port) == 200  # still serving
        agent.process.send_signal(signal.SIGTERM)
        assert agent.process.wait(timeout=DEADLINE) == 0, agent.text
    finally:
        agent.stop()
    lines = agent.lines
    text = "".join(lines)
    assert "Traceback" not in text, text
    assert "Exception occurred during processing of request" not in text, text
    went = [line for line in lines if "went away" in line]
    assert len(went) == RESETS, text
    assert all(" DEBUG " in line for line in went), text
