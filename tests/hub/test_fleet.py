"""1,000 simulated agents on a real nats-server: down detection, a hub restart that loses nothing,
and silences set through the API reaching a real agent-side control responder."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import nats
import pytest

from otel_sysops.agent import Agent
from otel_sysops.bridge import NatsBridge
from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer
from tests.bridge.support import FakeAlertManager, make_alert
from tests.hub.conftest import RunningHub, alert_doc, heartbeat, nats_portal, wait_for

pytestmark = pytest.mark.slow

HOSTS = 1000
# Heartbeats every 10 s in production; compressed here (the hub reads the interval from each one).
INTERVAL = 2.0


class Fleet:
    """Simulated agents: one connection publishes every host's heartbeats; alerts go to JetStream."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stopped: set[str] = set()
        self.alerts_sent: list[str] = []
        self.rounds = 0

    async def run(self) -> None:
        nc = await nats.connect(self.url, pending_size=64 * 1024 * 1024)
        try:
            while True:
                for i in range(HOSTS):
                    host = f"node-{i:04d}"
                    if host not in self.stopped:
                        await nc.publish(f"sysops.{host}.heartbeat", heartbeat(host, INTERVAL, i))
                await nc.flush()
                self.rounds += 1
                await anyio.sleep(INTERVAL)
        finally:
            await nc.close()

    async def alerts(self, start: int, count: int) -> None:
        nc = await nats.connect(self.url)
        js = nc.jetstream()
        for i in range(start, start + count):
            host = f"node-{i % HOSTS:04d}"
            doc = alert_doc(i, host)
            await js.publish(
                f"sysops.{host}.alerts", json.dumps(doc).encode(), headers={"Nats-Msg-Id": doc["id"]}
            )
            self.alerts_sent.append(doc["id"])
        await nc.close()


# Generous bounds: the waits poll state, and only a starved machine comes near them.
@pytest.mark.timeout(400)
def test_thousand_agents_down_alert_and_restart_loses_nothing(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub]
) -> None:
    hub = start_hub(nats_server.url)
    fleet = Fleet(nats_server.url)
    with nats_portal() as portal:
        portal.start_task_soon(fleet.run)
        wait_for(lambda: hub.get("/api/v1/hosts")["total"] == HOSTS, 120, "every host listed")
        portal.call(fleet.alerts, 0, 200)
        wait_for(lambda: hub.get("/api/v1/alerts/history")["total"] == 200, 120, "200 alerts")

        fleet.stopped.add("node-0042")
        wait_for(
            lambda: any(
                a["rule"] == "host_down" for a in hub.get("/api/v1/alerts", host="node-0042")["alerts"]
            ),
            60,
            "the down alert",
        )
        down = next(
            a for a in hub.get("/api/v1/alerts", host="node-0042")["alerts"] if a["rule"] == "host_down"
        )
        assert down["source"] == "hub"
        assert down["severity"] == "critical"
        assert down["threshold"] == 3 * INTERVAL
        assert down["value"] > 3 * INTERVAL
        assert hub.get("/api/v1/hosts/node-0042")["status"] == "down"
        # The hub's own channel (log) was told through the agents' alert manager.
        assert hub.hub.manager is not None
        assert hub.hub.manager.counts["notified"] >= 1

        # Restart the hub mid-run; alerts published while it is away are all there afterwards.
        db = hub.settings.hub.database_url().removeprefix("sqlite:///")
        hub.stop()
        portal.call(fleet.alerts, 200, 300)
        hub = start_hub(nats_server.url, db=db)
        wait_for(lambda: hub.get("/api/v1/alerts/history", source="agent")["total"] == 500, 120, "500 alerts")
        history = hub.get("/api/v1/alerts/history", source="agent", limit=1000)["alerts"]
        assert sorted(a["id"] for a in history) == sorted(fleet.alerts_sent)
        assert hub.get("/api/v1/hosts")["total"] == HOSTS

        # Still down after the restart; back up when its heartbeats return (the alert resolves, and
        # the hub's channels hear of it although the firing was notified before the restart).
        wait_for(lambda: hub.get("/api/v1/hosts/node-0042")["status"] == "down", 120, "still down")
        assert hub.hub.manager is not None
        manager = hub.hub.manager
        fleet.stopped.clear()
        wait_for(lambda: hub.get("/api/v1/hosts", status="down")["total"] == 0, 120, "every host up")
        wait_for(lambda: manager.counts["resolved"] >= 1, 120, "the resolution notified")
        resolved = hub.get("/api/v1/alerts/history", rule="host_down", host="node-0042", state="resolved")
        assert resolved["total"] >= 1
        assert not [
            a for a in hub.get("/api/v1/alerts", host="node-0042")["alerts"] if a["rule"] == "host_down"
        ]


def test_silence_through_the_api_reaches_the_agent_and_suppresses_only_its_match(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub], make_settings: Callable[..., Settings]
) -> None:
    hub = start_hub(nats_server.url)
    settings = make_settings(
        hostname="node-1",
        interval=0.5,
        nats={"url": nats_server.url, "heartbeat_interval": 0.5, "allow_anonymous_control": True},
    )
    agent = Agent(settings)
    manager = FakeAlertManager()
    agent.alerts = manager
    agent.pipeline.tick()
    bridge = NatsBridge(settings.nats, "node-1", agent)
    manager.add_channel(bridge.channel)
    key = hub.client.post(
        "/api/v1/keys", json={"name": "ops", "role": "operator"}, headers=hub.admin()
    ).json()["key"]
    operator = {"Authorization": f"Bearer {key}"}
    with nats_portal() as portal:
        portal.start_task_soon(bridge.run)
        wait_for(lambda: bridge.connected, 120, "the bridge connected")
        wait_for(lambda: hub.get("/api/v1/hosts")["total"] == 1, 120, "the agent's heartbeat")
        body: dict[str, Any] = {
            "hosts": ["node-1"],
            "matchers": {"rule": "disk_full"},
            "duration": 600,
            "comment": "disk swap",
        }
        response = hub.client.post("/api/v1/silences", json=body, headers=operator)
        assert response.status_code == 200, response.text
        reply = response.json()["replies"]["node-1"]
        assert reply["ok"] is True
        [silence] = manager.silences()
        assert silence["matchers"] == {"rule": "disk_full"}
        assert silence["created_by"] == "ops"
        listed = hub.get("/api/v1/silences", host="node-1")
        assert [s["id"] for s in listed["silences"]] == [reply["id"]]

        portal.call(manager.route, make_alert(1, rule="disk_full", host="node-1"))
        portal.call(manager.route, make_alert(2, rule="cpu_high", host="node-1"))
        wait_for(lambda: hub.get("/api/v1/alerts/history")["total"] >= 1, 120, "the unsilenced alert")
        assert [a["rule"] for a in hub.get("/api/v1/alerts/history")["alerts"]] == ["cpu_high"]
        assert [a.rule for a in manager.suppressed] == ["disk_full"]

        removed = hub.client.delete(f"/api/v1/silences/node-1/{reply['id']}", headers=operator)
        assert removed.status_code == 200, removed.text
        assert manager.silences() == []
        assert hub.client.delete("/api/v1/silences/node-1/nope", headers=operator).status_code == 404
        unknown = hub.client.post("/api/v1/silences", json={**body, "hosts": ["ghost"]}, headers=operator)
        assert unknown.status_code == 502
        assert "no agent answers" in unknown.json()["replies"]["ghost"]["error"]
        assert len(hub.get("/api/v1/silences/log")["silences"]) == 2
        portal.call(bridge.aclose, 2.0)
