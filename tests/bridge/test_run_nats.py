"""Done-when: `otel-sysops run` with SYSOPS_NATS__URL publishes heartbeats and inventory, answers
control.status, and `otel-sysops fleet --json --once` lists the host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import nats
import pytest

from tests.bridge.conftest import NatsServer
from tests.bridge.support import run, validate, wait_until
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_run_publishes_and_answers(nats_server: NatsServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        SYSOPS_NATS__URL=nats_server.url,
        SYSOPS_NATS__HEARTBEAT_INTERVAL="1",
        SYSOPS_PROMETHEUS__ENABLED="false",
        SYSOPS_PROMETHEUS__PORT=str(free_port()),
        SYSOPS_HOSTNAME="done-when-host",
    )
    received: dict[str, list[dict[str, Any]]] = {"heartbeat": [], "inventory": []}
    status: dict[str, Any] = {}
    fleet: dict[str, Any] = {}

    def ticked() -> list[dict[str, Any]]:
        return [b for b in received["heartbeat"] if b["last_tick"] is not None]

    async def main() -> None:
        nc = await nats.connect(nats_server.url)

        async def cb(msg: Any) -> None:
            received[msg.subject.rsplit(".", 1)[-1]].append(json.loads(msg.data))

        await nc.subscribe("sysops.done-when-host.heartbeat", cb=cb)
        await nc.subscribe("sysops.done-when-host.inventory", cb=cb)
        await nc.flush()
        agent = subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", "run", "--interval", "0.5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            await wait_until(
                # A heartbeat after the first tick (one before it, under load, has no last_tick yet).
                lambda: len(ticked()) >= 2 and len(received["inventory"]) == 1,
                timeout=30,
            )
            reply = await nc.request("sysops.done-when-host.control.status", b"", timeout=10)
            status.update(json.loads(reply.data))
            done = subprocess.run(
                [sys.executable, "-m", "otel_sysops", "fleet", "--json", "--once", "--window", "2.5"],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            fleet.update(json.loads(done.stdout))
        finally:
            agent.send_signal(signal.SIGTERM)
            out, _ = agent.communicate(timeout=30)
            await nc.close()
        assert agent.returncode == 0, out
        assert "connected to NATS" in out

    run(main)
    beat = ticked()[-1]
    validate(beat, "heartbeat")
    assert beat["host"] == "done-when-host"
    assert beat["interval"] == 1
    assert beat["last_tick"] is not None
    assert {"cpu", "memory"} <= set(beat["collectors"])
    validate(received["inventory"][0], "inventory")
    validate(status, "control-status")
    assert status["health"]["alive"] is True
    validate(fleet, "fleet")
    assert [h["host"] for h in fleet["hosts"]] == ["done-when-host"]
    assert fleet["stale"] == []
