"""The control plane changes nothing (silence, reload) over an unauthenticated connection unless
`nats.allow_anonymous_control = true`; connecting without credentials is a warning. Against a
real nats-server, anonymous and with user/password authorization."""

from __future__ import annotations

import json
import logging
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
from tests.bridge.support import FakeAlertManager, run, validate, wait_until

pytestmark = pytest.mark.slow

FAST = {"heartbeat_interval": 0.2, "reconnect_wait": 0.1, "connect_timeout": 2.0}
SILENCE = {"matchers": {"rule": "disk_full"}, "duration": 30 * 86400, "created_by": "anyone"}


class ReloadCounter:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.reloads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def request_reload(self) -> None:
        self.reloads += 1


def _exchange(
    server_url: str, nats_opts: dict[str, Any], make_settings: Callable[..., Settings], **client: Any
) -> dict[str, Any]:
    """Run a bridge; as a client, add a silence, list them, ask for a reload; return the answers."""
    settings = make_settings(hostname="ctl-1", nats={"url": server_url, **FAST, **nats_opts})
    agent = Agent(settings)
    manager = FakeAlertManager()
    agent.alerts = manager
    agent.pipeline.tick()
    view = ReloadCounter(agent)
    bridge = NatsBridge(settings.nats, "ctl-1", view)
    answers: dict[str, Any] = {}

    async def main() -> None:
        nc = await nats.connect(server_url, **client)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: bridge.connected)
            for name, subject, body in (
                ("add", "sysops.ctl-1.control.silence", SILENCE),
                ("list", "sysops.ctl-1.control.silence", {"action": "list"}),
                ("remove", "sysops.ctl-1.control.silence", {"action": "remove", "id": "x"}),
                ("reload", "sysops.ctl-1.control.reload", {}),
                ("status", "sysops.ctl-1.control.status", {}),
            ):
                msg = await nc.request(subject, json.dumps(body).encode(), timeout=10)
                answers[name] = json.loads(msg.data)
            tg.cancel_scope.cancel()
        await nc.close()

    run(main)
    agent.pipeline.close(2.0)
    for name in ("add", "list", "remove", "reload"):
        validate(answers[name], "control-reply")
    answers["silences"] = manager.silences()
    answers["reloads"] = view.reloads
    return answers


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("otel_sysops")
    ]


def test_anonymous_connection_refuses_silence_and_reload(
    nats_server: NatsServer, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_sysops")
    answers = _exchange(nats_server.url, {}, make_settings)
    for name in ("add", "remove", "reload"):
        assert answers[name]["ok"] is False, answers[name]
        assert "allow_anonymous_control" in answers[name]["error"]
    assert answers["silences"] == []
    assert answers["reloads"] == 0
    # Reading stays open: listing silences and the status.
    assert answers["list"]["ok"] is True
    assert answers["status"]["ok"] is True
    assert any("connected to NATS without credentials" in w for w in _warnings(caplog))


def test_anonymous_control_when_allowed(
    nats_server: NatsServer, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_sysops")
    answers = _exchange(nats_server.url, {"allow_anonymous_control": True}, make_settings)
    assert answers["add"]["ok"] is True
    assert [s["matchers"] for s in answers["silences"]] == [{"rule": "disk_full"}]
    assert answers["reload"] == {"schema_version": 1, "ok": True, "reloading": True}
    assert answers["reloads"] == 1
    # Still a warning: anyone on the server can do this.
    assert any(
        "without credentials" in w and "allow_anonymous_control = true" in w for w in _warnings(caplog)
    )


def test_authenticated_connection_may_silence_and_reload(
    nats_factory: list[NatsServer],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = NatsServer(
        nats_server_binary(), tmp_path / "n", 'authorization { user: "ops", password: "ops-secret" }'
    )
    nats_factory.append(server)
    server.start()
    caplog.set_level(logging.INFO, "otel_sysops")
    answers = _exchange(
        server.url,
        {"user": "ops", "password": "ops-secret"},
        make_settings,
        user="ops",
        password="ops-secret",
    )
    assert answers["add"]["ok"] is True
    assert answers["reloads"] == 1
    assert not any("without credentials" in w for w in _warnings(caplog))


def test_credentials_in_the_url_count_as_authenticated(make_settings: Callable[..., Settings]) -> None:
    assert make_settings(nats={"url": "nats://ops:pw@127.0.0.1:4222"}).nats.authenticated
    assert make_settings(nats={"url": "nats://tok3n@127.0.0.1:4222"}).nats.authenticated
    assert not make_settings(nats={"url": "nats://127.0.0.1:4222"}).nats.authenticated
    assert not make_settings(nats={"url": "nats://a:b@h1:4222,nats://h2:4222"}).nats.authenticated
    assert make_settings(nats={"url": "nats://h1:4222", "token": "t"}).nats.authenticated
