"""An agent assembled by hand for the API tests: a real pipeline, alert manager, HTTP server and API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_sysops.alerts import DEFAULT_DEDUP, AlertManager, DeliveryPolicy, Finding, ManagerPolicy, Severity
from otel_sysops.api import Api, ApiParts, build_api
from otel_sysops.http import HttpServer
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings

TOKEN = "s3cret-token"


@dataclass
class Agent:
    """The parts a test drives."""

    pipeline: Pipeline
    manager: AlertManager
    api: Api
    server: HttpServer
    url: str
    client: httpx.Client

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(self.url + path, params=params)

    def fire(self, rule: str, severity: Severity | None = Severity.WARNING, **attributes: str) -> Finding:
        finding = Finding(
            rule, "system.cpu.utilization", attributes, severity, f"{rule} {severity}", 0.97, 0.9
        )
        self.manager.submit(finding)
        return finding


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def start_agent(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """Return a function that starts an agent (state in tmp_path/state); everything is closed after."""
    started: list[Agent] = []

    def start(load: bool = False, **api: Any) -> Agent:
        api.setdefault("token", TOKEN)
        settings = make_settings(interval=1.0, api=api, analyzers={"enabled": False})
        pipeline = Pipeline(settings, load=load)
        # One attempt per delivery: a failing channel fails at once.
        manager = AlertManager("test-host", ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(attempts=1)))
        parts = ApiParts(
            pipeline=lambda: pipeline,
            alerts=manager,
            inventory=lambda: {"host": "test-host", "os": {"name": "Debian"}},
            state_dir=tmp_path / "state",
            started=time.time(),
            host="test-host",
        )
        built = build_api(parts, settings.api)
        pipeline.add_sink(built.tick_sink(pipeline.store))
        server = HttpServer("127.0.0.1", 0)
        for prefix, handler in built.handlers.items():
            server.mount(prefix, handler)
        host, port = server.start()
        agent = Agent(pipeline, manager, built, server, f"http://{host}:{port}", httpx.Client(timeout=10.0))
        started.append(agent)
        return agent

    yield start
    for agent in started:
        stop(agent)


def stop(agent: Agent) -> None:
    """Close one agent's parts (idempotent)."""
    agent.client.close()
    agent.server.close(2.0)
    agent.api.close(5.0)
    agent.pipeline.close(2.0)
