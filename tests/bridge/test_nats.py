"""The NATS bridge against a real nats-server: subjects, delivery through outages, control plane."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.aio.msg import Msg

from otel_sysops.agent import Agent
from otel_sysops.app import nats_service
from otel_sysops.bridge import NatsBridge
from otel_sysops.inventory import Roots, collect_inventory
from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer
from tests.bridge.support import FakeAlertManager, make_alert, run, validate, wait_until
from tests.conftest import FIXTURES
from tests.points import number_points

pytestmark = pytest.mark.slow

FAST = {"heartbeat_interval": 0.2, "reconnect_wait": 0.1, "connect_timeout": 2.0}


def make_agent(make_settings: Callable[..., Settings], url: str, **nats_opts: Any) -> Agent:
    settings = make_settings(
        hostname="node-1.example.com", interval=0.5, nats={"url": url, **FAST, **nats_opts}
    )
    agent = Agent(settings)
    agent.alerts = FakeAlertManager()
    agent.pipeline.tick()
    return agent


def no_dmidecode(dmi_type: str) -> str | None:
    return None


def fixture_inventory(base: Path) -> dict[str, Any]:
    return collect_inventory(
        Roots(base / "proc", base / "sys", base / "host"), "node-1", dmidecode=no_dmidecode, environ={}
    )


class Inbox:
    """A subscriber that keeps every message of a subject pattern."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []

    async def cb(self, msg: Msg) -> None:
        self.messages.append(msg)

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(m.data) for m in self.messages if m.subject.endswith(suffix)]


def test_subjects_and_payloads(nats_server: NatsServer, make_settings: Callable[..., Settings]) -> None:
    agent = make_agent(make_settings, nats_server.url)
    bridge = nats_service(agent.context())
    assert bridge is not None
    manager = agent.alerts
    assert isinstance(manager, FakeAlertManager)
    assert manager.channels == [bridge.channel]  # registered with the manager that takes channels

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.>", cb=inbox.cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            await manager.route(make_alert(1))
            await manager.route(make_alert(1, state="resolved"))
            await wait_until(
                lambda: (
                    len(inbox.on(".alerts")) == 2
                    and len(inbox.on(".heartbeat")) >= 2
                    and len(inbox.on(".inventory")) == 1
                )
            )
            tg.cancel_scope.cancel()
        await nc.close()
        subjects = {m.subject for m in inbox.messages}
        # Dots in the host name would add subject levels: the host token replaces them.
        assert subjects == {
            "sysops.node-1_example_com.alerts",
            "sysops.node-1_example_com.heartbeat",
            "sysops.node-1_example_com.inventory",
        }
        alerts = inbox.on(".alerts")
        assert [(a["id"], a["state"]) for a in alerts] == [("alert-1", "firing"), ("alert-1", "resolved")]
        headers = [m.headers for m in inbox.messages if m.subject.endswith(".alerts")]
        assert [h["Nats-Msg-Id"] for h in headers if h] == ["alert-1", "alert-1:resolved"]
        beat = inbox.on(".heartbeat")[-1]
        assert beat["host"] == "node-1.example.com"
        assert beat["interval"] == 0.2
        assert set(beat["collectors"]) == set(agent.pipeline.collectors)
        assert all(c["status"] == "ok" for c in beat["collectors"].values())
        assert beat["last_tick"] == agent.pipeline.last_tick
        inventory = inbox.on(".inventory")[0]
        assert inventory["host"] == "node-1.example.com"
        assert inventory["cpu"]["threads"] >= 1
        for doc in alerts:
            validate(doc, "alert")
        for doc in inbox.on(".heartbeat"):
            validate(doc, "heartbeat")
        validate(inventory, "inventory")

    run(main)


def test_inventory_sent_again_only_on_change(
    nats_server: NatsServer, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    base = tmp_path / "host"
    shutil.copytree(FIXTURES / "inventory-host", base, symlinks=True)
    agent = make_agent(make_settings, nats_server.url, inventory_interval=0.1)
    bridge = NatsBridge(agent.settings.nats, "node-1", agent, inventory=partial(fixture_inventory, base))

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.inventory", cb=inbox.cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: len(inbox.messages) == 1)
            # Ten recomputations of an unchanged host: nothing more is sent.
            await anyio.sleep(1.0)
            assert len(inbox.messages) == 1
            (base / "sys/class/net/eno1/mtu").write_text("1500\n")
            await wait_until(lambda: len(inbox.messages) == 2)
            await anyio.sleep(0.5)
            assert len(inbox.messages) == 2
            tg.cancel_scope.cancel()
        await nc.close()
        first, second = inbox.on(".inventory")
        assert first["network_interfaces"][0]["mtu"] == 9000
        assert second["network_interfaces"][0]["mtu"] == 1500
        assert first["hash"] != second["hash"]

    run(main)


def test_inventory_forced_after_the_interval(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    agent = make_agent(make_settings, nats_server.url, inventory_interval=0.1, inventory_force_interval=0.5)
    inventory = partial(fixture_inventory, FIXTURES / "inventory-host")
    bridge = NatsBridge(agent.settings.nats, "node-1", agent, inventory=inventory)

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.inventory", cb=inbox.cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: len(inbox.messages) >= 3)
            tg.cancel_scope.cancel()
        await nc.close()
        hashes = {d["hash"] for d in inbox.on(".inventory")}
        assert len(hashes) == 1  # unchanged, sent again because the forced interval passed

    run(main)


async def _wait_disconnected(bridge: NatsBridge) -> None:
    await wait_until(lambda: not bridge.connected, timeout=15)


def test_outage_jetstream_every_alert_once_in_order(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    agent = make_agent(make_settings, nats_server.url)
    bridge = NatsBridge(agent.settings.nats, "node-1", agent)

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.add_stream(name="ALERTS", subjects=["sysops.*.alerts"], duplicate_window=120)
        await nc.close()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            for i in range(5):
                bridge.publish_alert(make_alert(i))
            await wait_until(lambda: bridge.stats["published_jetstream"] == 5)
            nats_server.stop()
            await _wait_disconnected(bridge)
            for i in range(5, 30):
                bridge.publish_alert(make_alert(i))
            await anyio.sleep(0.5)
            assert len(bridge.outbox) == 25  # held while the server is away
            await anyio.to_thread.run_sync(nats_server.start)
            await wait_until(lambda: len(bridge.outbox) == 0, timeout=30)
            # The same alerts again (a retry after a lost ack looks like this): de-duplicated by id.
            for i in range(25, 30):
                bridge.publish_alert(make_alert(i))
            await wait_until(lambda: len(bridge.outbox) == 0)
            tg.cancel_scope.cancel()
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        info = await js.stream_info("ALERTS")
        assert info.state.messages == 30
        sub = await js.subscribe("sysops.node-1.alerts", ordered_consumer=True)
        ids = []
        for _ in range(30):
            msg = await sub.next_msg(timeout=5)
            ids.append(json.loads(msg.data)["id"])
            assert msg.headers is not None
            assert msg.headers["Nats-Msg-Id"] == ids[-1]
        await nc.close()
        assert ids == [f"alert-{i}" for i in range(30)]
        assert bridge.stats["connects"] == 2

    run(main)


def test_outage_core_publish_with_spool_survives_a_restart(
    nats_server: NatsServer, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """No stream covers the subject: core publish. Alerts held on disk across a bridge restart."""
    spool = tmp_path / "spool"
    agent = make_agent(make_settings, nats_server.url, spool_dir=str(spool))

    async def main() -> None:
        nats_server.stop()
        first = NatsBridge(agent.settings.nats, "node-1", agent)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            for i in range(40):
                first.publish_alert(make_alert(i))
            await wait_until(lambda: first.stats["connect_failures"] >= 1)
            tg.cancel_scope.cancel()
        assert len(list(spool.glob("*.msg"))) == 40
        await anyio.to_thread.run_sync(nats_server.start)
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.alerts", cb=inbox.cb)
        await nc.flush()
        second = NatsBridge(agent.settings.nats, "node-1", agent)  # the restarted agent
        assert len(second.outbox) == 40
        async with anyio.create_task_group() as tg:
            tg.start_soon(second.run)
            await wait_until(lambda: len(inbox.messages) == 40 and len(second.outbox) == 0)
            await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
        await nc.close()
        assert [d["id"] for d in inbox.on(".alerts")] == [f"alert-{i}" for i in range(40)]
        assert list(spool.glob("*.msg")) == []
        assert second.stats["published_jetstream"] == 0

    run(main)


def test_overflow_drops_the_oldest_and_counts(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    agent = make_agent(make_settings, nats_server.url, buffer_size=10)

    async def main() -> None:
        nats_server.stop()
        bridge = NatsBridge(agent.settings.nats, "node-1", agent)
        # The bridge runs (and fails to connect) while the alerts overflow its buffer...
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            for i in range(25):
                bridge.publish_alert(make_alert(i))
            assert bridge.outbox.dropped == 15
            tg.cancel_scope.cancel()
        # ...then NATS is back and a subscriber is listening before the bridge runs again, so
        # no message can be published before anyone listens, however the restart races.
        await anyio.to_thread.run_sync(nats_server.start)
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.alerts", cb=inbox.cb)
        await nc.flush()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: len(inbox.messages) == 10, timeout=60)
            tg.cancel_scope.cancel()
        await nc.close()
        assert [d["id"] for d in inbox.on(".alerts")] == [f"alert-{i}" for i in range(15, 25)]
        assert bridge.bridge_stats()["dropped"] == 15

    run(main)


def _request(nc: Any, subject: str, body: dict[str, Any] | bytes) -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return nc.request(subject, data, timeout=10)


def test_control_plane_round_trips(nats_server: NatsServer, make_settings: Callable[..., Settings]) -> None:
    overrides = {
        "hostname": "node-1",
        "interval": 0.2,
        "prometheus": {"enabled": False},
        "nats": {"url": nats_server.url, **FAST, "allow_anonymous_control": True},
    }
    settings = make_settings(**overrides)
    # The overrides are what a reload rebuilds the settings from (as --set on the command line).
    agent = Agent(settings, None, overrides, service_factories=[nats_service])
    manager = FakeAlertManager()
    agent.alerts = manager

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.alerts", cb=inbox.cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await wait_until(lambda: agent.pipeline.last_tick is not None and bool(agent.services))
            bridge = agent.services[0]
            assert isinstance(bridge, NatsBridge)
            await wait_until(lambda: bridge.connected)
            await manager.route(make_alert(7))

            status = json.loads((await _request(nc, "sysops.node-1.control.status", b"")).data)
            validate(status, "control-status")
            assert status["ok"] is True
            assert status["health"]["ready"] is True
            assert set(status["collectors"]) == set(agent.pipeline.collectors)
            assert [a["id"] for a in status["alerts"]] == ["alert-7"]
            assert status["silences_supported"] is True

            inv = json.loads((await _request(nc, "sysops.node-1.control.inventory", b"{}")).data)
            validate(inv, "control-reply")
            validate(inv["inventory"], "inventory")

            # A silence set over NATS reaches SilenceControl and suppresses the matching alert.
            body = {"action": "add", "matchers": {"rule": "disk_full"}, "duration": 600, "comment": "mnt"}
            validate(body, "control-silence-request")
            added = json.loads((await _request(nc, "sysops.node-1.control.silence", body)).data)
            validate(added, "control-reply")
            assert added["ok"] is True
            assert [s["id"] for s in manager.silences()] == [added["id"]]
            assert manager.silences()[0]["comment"] == "mnt"
            assert not await manager.route(make_alert(8, rule="disk_full"))
            assert await manager.route(make_alert(9, rule="cpu_high"))
            await wait_until(lambda: len(inbox.messages) == 2)
            assert [d["id"] for d in inbox.on(".alerts")] == ["alert-7", "alert-9"]
            listed = json.loads(
                (await _request(nc, "sysops.node-1.control.silence", {"action": "list"})).data
            )
            assert [s["id"] for s in listed["silences"]] == [added["id"]]
            removed = json.loads(
                (
                    await _request(
                        nc, "sysops.node-1.control.silence", {"action": "remove", "id": added["id"]}
                    )
                ).data
            )
            assert removed == {"schema_version": 1, "ok": True, "id": added["id"]}
            assert manager.silences() == []
            again = json.loads(
                (
                    await _request(
                        nc, "sysops.node-1.control.silence", {"action": "remove", "id": added["id"]}
                    )
                ).data
            )
            assert again["ok"] is False

            # Bad requests get a clear error reply, never a crash.
            for body_bytes, expected in [
                (b"{not json", "bad request"),
                (b"[1]", "expected a JSON object"),
                (json.dumps({"action": "mute"}).encode(), "unknown action"),
                (json.dumps({"matchers": {"rule": "x"}}).encode(), "duration"),
                (json.dumps({"matchers": {}, "duration": 5}).encode(), "matchers"),
            ]:
                answer = json.loads((await _request(nc, "sysops.node-1.control.silence", body_bytes)).data)
                validate(answer, "control-reply")
                assert answer["ok"] is False
                assert expected in answer["error"]

            pipeline = agent.pipeline
            reloaded = json.loads((await _request(nc, "sysops.node-1.control.reload", b"")).data)
            assert reloaded == {"schema_version": 1, "ok": True, "reloading": True}
            await wait_until(lambda: agent.pipeline is not pipeline)
            await wait_until(lambda: agent.pipeline.last_tick is not None)
            # The bridge reads the agent's current pipeline after the reload.
            after = json.loads((await _request(nc, "sysops.node-1.control.status", b"")).data)
            assert after["last_tick"] is not None
            assert after["last_tick"] >= (pipeline.last_tick or 0)
            tg.cancel_scope.cancel()
        await nc.close()

    run(main)


def test_silence_without_alert_manager_says_so(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        hostname="node-1",
        nats={"url": nats_server.url, **FAST, "allow_anonymous_control": True},
        alerts={"enabled": False},
    )
    agent = Agent(settings)  # alerts off: the plain log sink, no silences, no channels
    bridge = nats_service(agent.context())
    assert bridge is not None

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            body = {"matchers": {"rule": "x"}, "duration": 60}
            answer = json.loads((await _request(nc, "sysops.node-1.control.silence", body)).data)
            status = json.loads((await _request(nc, "sysops.node-1.control.status", b"")).data)
            tg.cancel_scope.cancel()
        await nc.close()
        assert answer["ok"] is False
        assert "silences not supported" in answer["error"]
        validate(status, "control-status")
        assert status["silences_supported"] is False
        assert status["alerts"] is None

    run(main)


def test_oversized_message_is_dropped_not_blocking(
    nats_factory: list[NatsServer], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    from tests.bridge.conftest import nats_server_binary

    server = NatsServer(nats_server_binary(), tmp_path / "n", "max_payload: 4096")
    nats_factory.append(server)
    server.start()
    agent = make_agent(make_settings, server.url)
    bridge = NatsBridge(agent.settings.nats, "node-1", agent)
    big = dataclasses.replace(make_alert(1), message="x" * 10_000)

    async def main() -> None:
        nc = await nats.connect(server.url)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.alerts", cb=inbox.cb)
        await nc.flush()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            bridge.publish_alert(big)
            bridge.publish_alert(make_alert(2))
            await wait_until(lambda: len(inbox.messages) == 1)
            tg.cancel_scope.cancel()
        await nc.close()
        assert [d["id"] for d in inbox.on(".alerts")] == ["alert-2"]
        assert bridge.stats["rejected"] == 1

    run(main)


def test_stream_refusing_alerts_falls_back_to_core(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    from nats.js.api import DiscardPolicy

    agent = make_agent(make_settings, nats_server.url)
    bridge = NatsBridge(agent.settings.nats, "node-1", agent)

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        await js.add_stream(name="FULL", subjects=["sysops.*.alerts"], max_msgs=2, discard=DiscardPolicy.NEW)
        inbox = Inbox()
        await nc.subscribe("sysops.node-1.alerts", cb=inbox.cb)
        await nc.flush()
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            for i in range(5):
                bridge.publish_alert(make_alert(i))
            await wait_until(lambda: len(bridge.outbox) == 0)
            await wait_until(lambda: len(inbox.messages) >= 5)
            tg.cancel_scope.cancel()
        info = await js.stream_info("FULL")
        await nc.close()
        assert info.state.messages == 2
        assert bridge.stats["published_jetstream"] == 2
        # Every alert still reached core subscribers, in order (the refused one retried on core).
        ids = [d["id"] for d in inbox.on(".alerts")]
        assert sorted(set(ids), key=ids.index) == [f"alert-{i}" for i in range(5)]

    run(main)


def test_agent_keeps_ticking_while_nats_is_down(make_settings: Callable[..., Settings]) -> None:
    from tests.conftest import free_port

    overrides = {
        "hostname": "node-1",
        "interval": 0.1,
        "prometheus": {"enabled": False},
        "nats": {"url": f"nats://127.0.0.1:{free_port()}", **FAST},
    }
    agent = Agent(make_settings(**overrides), None, overrides, service_factories=[nats_service])
    manager = FakeAlertManager()
    agent.alerts = manager

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await wait_until(lambda: bool(agent.services))
            bridge = agent.services[0]
            assert isinstance(bridge, NatsBridge)
            for i in range(50):
                assert await manager.route(make_alert(i))
            await wait_until(lambda: agent.ticks >= 10 and bridge.stats["connect_failures"] >= 2)
            assert bridge.outbox.kinds() == {"alert": 50, "inventory": 1}
            assert not bridge.connected
            # The bridge's own state is exported with the agent's metrics.
            ticks = agent.ticks
            await wait_until(lambda: agent.ticks >= ticks + 2)
            assert agent.pipeline.last_result is not None
            points = {
                (m.name, tuple(sorted(dict(p.attributes or {}).items()))): p.value
                for m, p in number_points(agent.pipeline.last_result.data)
                if m.name.startswith("sysops.nats.")
            }
            assert points[("sysops.nats.buffered", (("sysops.nats.kind", "alert"),))] == 50
            assert points[("sysops.nats.connected", ())] == 0
            assert points[("sysops.nats.connect.failures", ())] >= 2
            assert points[("sysops.nats.dropped", (("sysops.nats.reason", "buffer_full"),))] == 0
            tg.cancel_scope.cancel()

    run(main)


def test_fleet_live_table(nats_server: NatsServer) -> None:
    import os
    import signal
    import subprocess
    import sys
    import threading

    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSOPS_")}
    env["SYSOPS_NATS__URL"] = nats_server.url
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "fleet", "--refresh", "0.2", "--queue", ""],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("live-host-1"):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        beat = {"schema_version": 1, "host": "live-host-1", "interval": 1.0, "collectors": {}}
        with anyio.fail_after(30):
            while not seen.is_set():
                await nc.publish("sysops.live-host-1.heartbeat", json.dumps(beat).encode())
                await anyio.sleep(0.2)
        await nc.close()

    try:
        run(main)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        reader.join(5)
    assert proc.returncode in (0, 130)
    assert any("1 host(s), 0 stale" in line for line in lines)


class BrokenSilences(FakeAlertManager):
    """An alert manager whose silence store fails (a disk error, say)."""

    def add_silence(self, matchers: Any, duration: float, comment: str = "", created_by: str = "") -> str:
        raise RuntimeError("silence store unavailable")


def test_failing_silence_control_still_answers(
    nats_server: NatsServer, make_settings: Callable[..., Settings]
) -> None:
    agent = make_agent(make_settings, nats_server.url, allow_anonymous_control=True)
    agent.alerts = BrokenSilences()
    bridge = NatsBridge(agent.settings.nats, "node-1", agent)

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            body = {"matchers": {"rule": "x"}, "duration": 60}
            answer = json.loads((await _request(nc, "sysops.node-1.control.silence", body)).data)
            tg.cancel_scope.cancel()
        await nc.close()
        validate(answer, "control-reply")
        assert answer["ok"] is False
        assert "silence store unavailable" in answer["error"]

    run(main)
