"""`otel-sysops fleet` with no NATS reachable says what it is doing: never a blank terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.bridge.conftest import NatsServer, nats_server_binary


def _wait_for(lines: list[str], proc: subprocess.Popen[str], text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in list(lines)):
        assert proc.poll() is None, "".join(lines)
        assert time.monotonic() < deadline, f"{text!r} never printed:\n{''.join(lines)}"
        time.sleep(0.05)


def test_fleet_prints_connecting_and_retries_until_the_server_comes(
    tmp_path: Path, nats_factory: list[NatsServer]
) -> None:
    # A server whose port is closed until it is started, mid-test.
    server = NatsServer(nats_server_binary(), tmp_path / "nats")
    nats_factory.append(server)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(SYSOPS_NATS__URL=server.url, SYSOPS_NATS__RECONNECT_WAIT="0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "fleet", "--json", "--refresh", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        lines.extend(proc.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _wait_for(lines, proc, f"connecting to {server.url}")
        _wait_for(lines, proc, "retrying in")
        assert lines[0].startswith(f"otel-sysops fleet: connecting to {server.url}")
        assert f"cannot reach NATS at {server.url}" in lines[1]
        assert "attempt 1 failed" in lines[1]
        server.start()
        _wait_for(lines, proc, f"connected to {server.url} after")
    finally:
        proc.terminate()
        proc.wait(30)
        reader.join(10)
