"""The example server configuration of docs/nats.md, loaded verbatim into a real nats-server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest

from otel_sysops.agent import Agent
from otel_sysops.bridge import NatsBridge
from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer, nats_server_binary
from tests.bridge.support import FakeAlertManager, make_alert, run, wait_until

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "nats.md"


def documented_config() -> str:
    text = DOC.read_text()
    block = re.search(
        r"<!-- permissions-example -->\n```\n(.*?)```\n<!-- /permissions-example -->", text, re.S
    )
    assert block is not None, "the permissions example is missing from docs/nats.md"
    return block.group(1)


def test_documented_permissions(
    nats_factory: list[NatsServer], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    server = NatsServer(nats_server_binary(), tmp_path / "n", documented_config())
    nats_factory.append(server)
    server.start()
    settings = make_settings(
        hostname="web-1",
        nats={"url": server.url, "user": "web-1", "password": "web-1-secret", "heartbeat_interval": 0.2},
    )
    agent = Agent(settings)
    agent.alerts = FakeAlertManager()
    agent.pipeline.tick()
    bridge = NatsBridge(settings.nats, "web-1", agent)

    async def main() -> None:
        operator = await nats.connect(server.url, user="alice", password="operator-secret")
        seen: list[Any] = []

        async def cb(msg: Any) -> None:
            seen.append(msg.subject)

        await operator.subscribe("sysops.>", cb=cb)
        await operator.flush()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            bridge.publish_alert(make_alert(1, host="web-1"))
            await wait_until(lambda: "sysops.web-1.alerts" in seen and "sysops.web-1.heartbeat" in seen)
            # The operator may send control requests; the agent may answer them.
            reply = await operator.request("sysops.web-1.control.status", b"", timeout=5)
            assert json.loads(reply.data)["ok"] is True

            # The agent's user may not publish as another host.
            agent_nc = await nats.connect(server.url, user="web-1", password="web-1-secret", error_cb=_ignore)
            await agent_nc.publish("sysops.web-2.alerts", b"{}")
            await agent_nc.publish("sysops.web-1.heartbeat", b"{}")
            await agent_nc.flush()
            await anyio.sleep(0.3)
            assert "sysops.web-2.alerts" not in seen
            # ... nor send control requests to other agents.
            await agent_nc.publish("sysops.web-2.control.reload", b"")
            await agent_nc.flush()
            await anyio.sleep(0.2)
            assert "sysops.web-2.control.reload" not in seen
            await agent_nc.close()

            # The fleet viewer can listen but not send.
            fleet_nc = await nats.connect(server.url, user="fleet", password="fleet-secret", error_cb=_ignore)
            await fleet_nc.publish("sysops.web-1.control.reload", b"")
            await fleet_nc.flush()
            await anyio.sleep(0.2)
            assert "sysops.web-1.control.reload" not in seen
            await fleet_nc.close()
            tg.cancel_scope.cancel()
        await operator.close()

    run(main)


async def _ignore(exc: Exception) -> None:
    """Permission violations arrive as async errors; the assertions check their effect."""
