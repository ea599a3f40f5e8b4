"""The agent as the composition root runs it: reloads, shutdown and the one HTTP listener."""

from __future__ import annotations

import os
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any

import anyio
from opentelemetry.sdk.metrics.export import MetricsData

from otel_sysops.agent import Agent
from otel_sysops.alerts import Finding
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import load_settings
from tests.conftest import free_port

DEADLINE = 30.0


def get(url: str) -> tuple[int, str]:
    """Return (status, body); (0, "") for an HTTP error or no answer."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), resp.read().decode()
    except OSError:
        return 0, ""


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` on the loop until it holds (a generous deadline, no timing assertion)."""
    with anyio.fail_after(DEADLINE):
        while not condition():
            await anyio.sleep(0.02)
    assert condition(), what


def run_agent(agent: Agent, drive: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """Run the agent with `drive` beside it; return the agent's exit code."""

    async def main() -> int:
        codes: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            codes.append(await agent.run())
        return codes[0]

    return anyio.run(main, backend="asyncio")


def write(config: Path, interval: float, port: int, prometheus: bool = True) -> None:
    config.write_text(
        f"interval = {interval}\n[prometheus]\nenabled = {str(prometheus).lower()}\n"
        f'host = "127.0.0.1"\nport = {port}\n[alerts]\nenabled = false\n[logs]\nenabled = false\n'
    )


def test_a_reload_requested_during_a_reload_is_applied_and_shutdown_after_reloads_is_clean(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "sysops.toml"
    write(config, 0.2, port)
    agent = Agent(load_settings(config, environ={}), config=config)
    pipelines: list[Pipeline] = []

    def on_pipeline(pipeline: Pipeline) -> None:
        pipelines.append(pipeline)
        if len(pipelines) == 2:
            # Inside the first reload (hooks run on the loop while it is under way): a newer
            # file and another request, as the control plane would send them.
            write(config, 0.3, port)
            agent.request_reload()

    agent.add_pipeline_hook(on_pipeline)

    async def drive() -> None:
        await wait_for(lambda: agent.pipeline.last_tick is not None, "a first tick")
        write(config, 0.25, port)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: agent.settings.interval == 0.3, "the latest file applied")
        await wait_for(lambda: agent.pipeline.last_tick is not None, "a tick after the reloads")
        status = await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/metrics")
        assert status[0] == 200
        os.kill(os.getpid(), signal.SIGINT)

    assert run_agent(agent, drive) == 0
    assert len(pipelines) == 3  # start, then two reloads: none lost
    assert agent.http is not None
    assert agent.http.address is None  # the listener was closed at shutdown


class _Gate(Analyzer):
    """Holds its tick open until the pipeline closes (or a bound passes) and records the overlap."""

    def __init__(self, ctx: AnalyzerContext, state: dict[str, threading.Event]) -> None:
        super().__init__(ctx)
        self.state = state

    def analyze(self, now: float) -> Iterable[Finding]:
        self.state["inside"].set()
        self.state["entered"].set()
        # Bounded: the fixed agent never closes the pipeline under a tick, so this wait expires.
        self.state["closed"].wait(5.0)
        self.state["inside"].clear()
        return ()


class _CloseProbe:
    """A sink that records whether the pipeline closed while a tick was inside the analyzers."""

    name = "close-probe"

    def __init__(self, state: dict[str, threading.Event]) -> None:
        self.state = state
        self.closed_during_tick: bool | None = None

    def consume(self, data: MetricsData, timestamp: float) -> None:
        return None

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        self.closed_during_tick = self.state["inside"].is_set()
        self.state["closed"].set()


def test_shutdown_waits_for_the_tick_in_flight_before_closing_the_pipeline() -> None:
    port = free_port()
    settings = load_settings(None, {"interval": 0.2, "prometheus": {"port": port}}, environ={})
    agent = Agent(settings)
    state = {name: threading.Event() for name in ("inside", "entered", "closed")}
    probe = _CloseProbe(state)
    agent.pipeline.add_analyzer("gate", _Gate(AnalyzerContext("gate", settings, agent.pipeline.store), state))
    agent.pipeline.add_sink(probe)

    async def drive() -> None:
        await wait_for(state["entered"].is_set, "a tick inside the gate")
        os.kill(os.getpid(), signal.SIGTERM)

    assert run_agent(agent, drive) == 0
    assert probe.closed_during_tick is False


def test_a_reload_that_cannot_bind_keeps_the_old_listener(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "sysops.toml"
    write(config, 0.2, port)
    agent = Agent(load_settings(config, environ={}), config=config)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = int(taken.getsockname()[1])

    async def drive() -> None:
        await wait_for(lambda: agent.pipeline.last_tick is not None, "a first tick")
        write(config, 0.3, busy)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: agent.settings.interval == 0.3, "the reload applied")
        status = await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/healthz")
        assert status[0] == 200
        os.kill(os.getpid(), signal.SIGINT)

    try:
        assert run_agent(agent, drive) == 0
    finally:
        taken.close()
    assert agent.bound is None or agent.bound[1] == port


def test_health_is_served_with_prometheus_off_and_metrics_is_not() -> None:
    port = free_port()
    settings = load_settings(
        None, {"interval": 0.2, "prometheus": {"enabled": False, "port": port}}, environ={}
    )
    agent = Agent(settings)
    seen: dict[str, int] = {}

    async def drive() -> None:
        await wait_for(lambda: agent.pipeline.last_tick is not None, "a first tick")
        for path in ("/healthz", "/readyz", "/metrics"):
            seen[path] = (await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}{path}"))[0]
        os.kill(os.getpid(), signal.SIGTERM)

    assert run_agent(agent, drive) == 0
    assert seen == {"/healthz": 200, "/readyz": 200, "/metrics": 0}  # 0: an HTTP error (404)


def test_handlers_mounted_on_the_agent_are_served_and_survive_a_reload(tmp_path: Path) -> None:
    from otel_sysops.http import Response

    port = free_port()
    config = tmp_path / "sysops.toml"
    write(config, 0.2, port, prometheus=False)
    agent = Agent(load_settings(config, environ={}), config=config)
    agent.mount("/api/v1/", lambda request: Response(200, request.path.encode(), "text/plain"))
    bodies: list[tuple[int, str]] = []

    async def drive() -> None:
        await wait_for(lambda: agent.bound is not None, "the listener")
        bodies.append(await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/api/v1/alerts"))
        write(config, 0.3, port, prometheus=True)
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: agent.settings.interval == 0.3, "the reload applied")
        await wait_for(lambda: agent.pipeline.last_tick is not None, "a tick after the reload")
        bodies.append(await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/api/v1/x"))
        bodies.append(await anyio.to_thread.run_sync(get, f"http://127.0.0.1:{port}/metrics"))
        os.kill(os.getpid(), signal.SIGTERM)

    assert run_agent(agent, drive) == 0
    assert bodies[0] == (200, "/api/v1/alerts")
    assert bodies[1] == (200, "/api/v1/x")
    assert bodies[2][0] == 200
    assert "system_cpu_time_seconds_total" in bodies[2][1]
