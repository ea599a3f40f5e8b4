"""`otel-sysops fleet` with no NATS reachable says what it is doing: never a blank terminal."""

from __future__ import annotations

from pathlib import Path

from tests.bridge.conftest import NatsServer, nats_server_binary
from tests.conftest import Command, clean_env


def test_fleet_prints_connecting_and_retries_until_the_server_comes(
    tmp_path: Path, nats_factory: list[NatsServer]
) -> None:
    # A server whose port is closed until it is started, mid-test.
    server = NatsServer(nats_server_binary(), tmp_path / "nats")
    nats_factory.append(server)
    env = clean_env(SYSOPS_NATS__URL=server.url, SYSOPS_NATS__RECONNECT_WAIT="0.1")
    fleet = Command(["fleet", "--json", "--refresh", "0.2"], env)
    try:
        fleet.wait_for_line(f"connecting to {server.url}")
        fleet.wait_for_line("retrying in")
        assert fleet.lines[0].startswith(f"otel-sysops fleet: connecting to {server.url}")
        assert f"cannot reach NATS at {server.url}" in fleet.lines[1]
        assert "attempt 1 failed" in fleet.lines[1]
        server.start()
        fleet.wait_for_line(f"connected to {server.url} after")
    finally:
        fleet.stop()
