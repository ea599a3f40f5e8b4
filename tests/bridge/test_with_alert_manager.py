"""The NATS bridge with the real alert manager: findings reach `sysops.{host}.alerts`, and a
silence set over the control plane suppresses the matching alert and nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import nats
import pytest

from otel_sysops.agent import Agent
from otel_sysops.alerts import (
    DEFAULT_DEDUP,
    AlertManager,
    DeliveryPolicy,
    Finding,
    ManagerPolicy,
    Notification,
    Severity,
)
from otel_sysops.app import alert_service, nats_service
from otel_sysops.bridge import NatsBridge
from otel_sysops.settings import Settings
from tests.alerts.test_manager import Clock, Recorder
from tests.bridge.conftest import NatsServer
from tests.bridge.support import run, validate, wait_until
from tests.bridge.test_nats import FAST, Inbox, _request

pytestmark = pytest.mark.slow


def finding(rule: str, severity: Severity | None, value: float = 1.0) -> Finding:
    return Finding(
        rule=rule,
        metric="sysops.test",
        attributes={"k": rule},
        severity=severity,
        message=f"{rule} is {value}",
        value=value,
        threshold=0.9,
    )


def test_findings_reach_nats_and_a_nats_silence_suppresses_only_its_match(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    overrides: dict[str, Any] = {
        "hostname": "node-9",
        "interval": 0.2,
        "prometheus": {"enabled": False},
        "alerts": {"group_window": 0.05},
        "nats": {"url": nats_server.url, **FAST, "allow_anonymous_control": True},
    }
    agent = Agent(
        make_settings(**overrides), None, overrides, service_factories=[alert_service, nats_service]
    )
    manager = agent.alerts
    assert isinstance(manager, AlertManager)

    alerts: list[dict[str, Any]] = []

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-9.alerts", cb=inbox.cb)

        def received() -> list[dict[str, Any]]:
            return [json.loads(m.data) for m in inbox.messages]

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await wait_until(lambda: len(agent.services) == 2)
            bridge = agent.services[1]
            assert isinstance(bridge, NatsBridge)
            await wait_until(lambda: bridge.connected)

            manager.submit(finding("test.cpu", Severity.CRITICAL, 0.97))
            await wait_until(lambda: any(a["rule"] == "test.cpu" for a in received()))

            answer = json.loads(
                (
                    await _request(
                        nc,
                        "sysops.node-9.control.silence",
                        {"matchers": {"rule": "test.disk"}, "duration": 60, "comment": "maintenance"},
                    )
                ).data
            )
            assert answer["ok"] is True, answer
            manager.submit(finding("test.disk", Severity.WARNING))
            manager.submit(finding("test.mem", Severity.WARNING))
            await wait_until(lambda: any(a["rule"] == "test.mem" for a in received()))
            manager.submit(finding("test.cpu", None))
            await wait_until(
                lambda: any(a["rule"] == "test.cpu" and a["state"] == "resolved" for a in received())
            )

            status = json.loads((await _request(nc, "sysops.node-9.control.status", b"")).data)
            validate(status, "control-status")
            assert sorted(a["rule"] for a in status["alerts"]) == ["test.disk", "test.mem"]
            assert [s["matchers"] for s in manager.silences()] == [{"rule": "test.disk"}]
            tg.cancel_scope.cancel()
        await nc.close()
        alerts.extend(received())

    run(main)
    for payload in alerts:
        validate(payload, "alert")
    rules = [(a["rule"], a["state"]) for a in alerts]
    assert ("test.cpu", "firing") in rules
    assert ("test.cpu", "resolved") in rules
    assert ("test.mem", "firing") in rules
    assert not [r for r in rules if r[0] == "test.disk"]  # silenced over NATS
    fired = next(a for a in alerts if a["rule"] == "test.cpu" and a["state"] == "firing")
    resolved = next(a for a in alerts if a["rule"] == "test.cpu" and a["state"] == "resolved")
    assert fired["id"] == resolved["id"]
    assert fired["host"] == "node-9"
    assert fired["severity"] == "critical"


def test_an_alert_storm_reaches_nats_whole_and_a_held_back_count_is_published(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    """25 distinct critical alerts with the chat rate limit at its default (10, then 1/min): NATS is
    a machine, it gets all 25; a summary handed to the NATS channel goes out as an alert too."""
    overrides: dict[str, Any] = {
        "hostname": "node-8",
        "interval": 0.2,
        "prometheus": {"enabled": False},
        "alerts": {"group_window": 0.0},
        "nats": {"url": nats_server.url, **FAST},
    }
    agent = Agent(
        make_settings(**overrides), None, overrides, service_factories=[alert_service, nats_service]
    )
    manager = agent.alerts
    assert isinstance(manager, AlertManager)

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-8.alerts", cb=inbox.cb)

        def received() -> list[dict[str, Any]]:
            return [json.loads(m.data) for m in inbox.messages]

        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await wait_until(lambda: len(agent.services) == 2)
            bridge = agent.services[1]
            assert isinstance(bridge, NatsBridge)
            await wait_until(lambda: bridge.connected)
            for i in range(25):
                manager.submit(finding(f"test.oom{i}", Severity.CRITICAL))
            await wait_until(lambda: len(received()) >= 25)
            await bridge.channel.send(Notification([], {"critical": 3, "warning": 2}))
            await wait_until(lambda: len(received()) >= 26)
            tg.cancel_scope.cancel()
        await nc.close()
        got.extend(received())

    got: list[dict[str, Any]] = []
    run(main)
    for payload in got:
        validate(payload, "alert")
    rules = [a["rule"] for a in got]
    assert sorted(rules[:25]) == sorted(f"test.oom{i}" for i in range(25))
    summary = got[25]
    assert summary["rule"] == "sysops.alerts.held_back"
    assert summary["severity"] == "critical"
    assert summary["value"] == 5
    assert summary["message"] == "5 alert(s) held back (3 critical, 2 warning)"


def test_25_alerts_1_5_s_apart_all_reach_nats_while_the_chat_channel_is_rate_limited(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    """25 distinct OOM alerts 1.5 s apart with the default rate limit (10, then 1 a minute) and NATS
    healthy: the chat channel is limited, the bridge's channel publishes every one of them."""
    settings = make_settings(hostname="node-7", nats={"url": nats_server.url, **FAST})
    bridge = NatsBridge(settings.nats, "node-7")
    clock = Clock()
    manager = AlertManager(
        "node-7", ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(group_window=0.0, backoff=0.0)), clock
    )
    chat = Recorder("chat")  # a chat channel beside NATS, rate-limited as Slack or Telegram are
    manager.add_channel(chat)
    manager.add_channel(bridge.channel)
    got: list[dict[str, Any]] = []

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-7.alerts", cb=inbox.cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            for i in range(25):
                manager.submit(finding(f"log.oom_kill.victim{i}", Severity.CRITICAL))
                manager.reevaluate()
                for runner in manager.runners:
                    await runner.pump()
                clock.advance(1.5)
            # Wait on what arrives (a generous bound): all 25, or fewer when some were held back.
            with anyio.move_on_after(30):
                while len(inbox.messages) < 25:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        got.extend(json.loads(m.data) for m in inbox.messages)
        await nc.close()

    run(main)
    assert sorted(a["rule"] for a in got) == sorted(f"log.oom_kill.victim{i}" for i in range(25)), (
        f"{len(got)} of 25 alerts reached sysops.node-7.alerts"
    )
    chat_listed = sum(len(n.alerts) for n in chat.sent)
    assert 10 <= chat_listed < 25  # the chat channel's own bucket still applies to it
