"""The fleet view: its state machine, and 1,000 simulated agents against one real nats-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

from otel_sysops.alerts import AlertSink, LogAlertSink
from otel_sysops.bridge import FleetView, NatsBridge
from otel_sysops.health import Health
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer
from tests.bridge.support import make_alert, run, validate, wait_until

AGENTS = 1000
STOPPED = 100


class SimulatedAgent:
    """One agent as the bridge sees it (the AgentView protocol), sharing one idle pipeline."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.alerts: AlertSink = LogAlertSink()
        self.started = time.time()
        self.ticks = 0

    def health(self) -> Health:
        return Health(True, True, "simulated")


def test_fleet_view_state() -> None:
    view = FleetView(stale_factor=3)
    view.on_heartbeat({"host": "a", "interval": 10, "agent": {"version": "1"}, "collectors": {}}, 1000.0)
    view.on_heartbeat(
        {"host": "b", "interval": 10, "collectors": {"cpu": {"status": "failed", "error": "x"}}}, 1025.0
    )
    view.on_heartbeat({"interval": 10}, 1000.0)  # no host: counted, not fatal
    view.on_alert({**make_alert(1, host="b").to_dict(), "schema_version": 1})
    view.on_alert({**make_alert(2, host="b").to_dict(), "schema_version": 1})
    view.on_alert({**make_alert(2, host="b", state="resolved").to_dict(), "schema_version": 1})
    doc = view.to_json(now=1031.0)
    validate(doc, "fleet")
    assert doc["stale"] == ["a"]  # 31 s > 3 x 10 s
    rows = {h["host"]: h for h in doc["hosts"]}
    assert rows["b"]["failed_collectors"] == ["cpu"]
    assert rows["b"]["active_alerts"] == 1
    assert [a["id"] for a in doc["alerts"]] == ["alert-1"]
    assert view.malformed == 1
    table = view.render(now=1031.0)
    assert "STALE" in table
    assert "alert number 1" in table


@pytest.mark.slow
def test_thousand_agents_fleet_lists_every_host_and_flags_stopped(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(nats={"url": nats_server.url, "heartbeat_interval": 1.0, "reconnect_wait": 0.2})
    pipeline = Pipeline(settings, load=False)
    bridges = [
        NatsBridge(settings.nats, f"sim-{i:04d}", SimulatedAgent(settings, pipeline)) for i in range(AGENTS)
    ]
    scopes: list[anyio.CancelScope] = []
    fleet: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSOPS_")}
    env["SYSOPS_NATS__URL"] = nats_server.url

    async def one(bridge: NatsBridge) -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await bridge.run()

    def run_fleet(listening: anyio.Event) -> None:
        with subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", "fleet", "--json", "--once", "--window", "7"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        ) as proc:
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert first.startswith(f"otel-sysops fleet: connecting to {nats_server.url}"), first
            second = proc.stderr.readline()
            assert "listening" in second, second
            anyio.from_thread.run_sync(listening.set)
            out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        fleet.update(json.loads(out))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for bridge in bridges:
                tg.start_soon(one, bridge)
            await wait_until(lambda: all(b.connected for b in bridges), timeout=60)

            listening = anyio.Event()

            async def stop_some() -> None:
                # Stop some agents mid-window, after the fleet view has seen them beat.
                await listening.wait()
                await anyio.sleep(2.0)
                for scope in scopes[:STOPPED]:
                    scope.cancel()

            tg.start_soon(stop_some)
            await anyio.to_thread.run_sync(run_fleet, listening)
            tg.cancel_scope.cancel()

    run(main, timeout=110)
    validate(fleet, "fleet")
    hosts = {h["host"] for h in fleet["hosts"]}
    assert hosts == {b.host for b in bridges}
    stopped = {b.host for b, _ in zip(bridges, range(STOPPED), strict=False)}
    assert set(fleet["stale"]) == stopped
