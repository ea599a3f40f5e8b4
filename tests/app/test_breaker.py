"""A collector that fails every tick: its circuit opens after 5 failures, it is retried after the
pause, and the agent's health (healthy / degraded / critical) shows in /readyz and self-telemetry.

Time is a fake clock handed to the breakers (the first test: the default clock, well inside the
60 s pause); nothing sleeps.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pytest
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.agent import Agent
from otel_sysops.churn import ChurningMeter
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Collector, CollectorContext
from otel_sysops.settings import Settings
from tests.points import number_points


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BrokenCollector(Collector[int]):
    """Fails every sample (a permission error, a broken driver) until `healed`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.attempts = 0
        self.healed = False

    def sample(self, now: float) -> int:
        self.attempts += 1
        if not self.healed:
            raise PermissionError("/dev/broken: permission denied")
        return 1

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge("test.broken", [self._gauge], "1")

    def _gauge(self, _: CallbackOptions) -> Iterable[Observation]:
        return [] if self.snapshot is None else [Observation(self.snapshot)]


class WorkingCollector(BrokenCollector):
    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.healed = True

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        return None


def _pipeline(settings: Settings, clock: FakeClock) -> tuple[Pipeline, BrokenCollector]:
    from otel_sysops.breaker import CollectorBreakers

    pipe = Pipeline(settings, load=False)
    pipe.breakers = CollectorBreakers(
        settings.health.failures_to_open, settings.health.retry_after, clock=clock
    )
    broken = BrokenCollector(CollectorContext("broken", settings))
    pipe.add_collector("broken", broken)
    return pipe, broken


def test_the_circuit_opens_after_5_failures_and_retries_after_60s(
    make_settings: Callable[..., Settings],
) -> None:
    clock = FakeClock()
    pipe, broken = _pipeline(make_settings(), clock)
    try:
        for _ in range(5):
            assert "PermissionError" in pipe.tick().failed["broken"]
        assert broken.attempts == 5
        for _ in range(10):
            clock.now += 5.0  # 50 s more: still inside the pause
            result = pipe.tick()
            assert "circuit open after 5 consecutive failures" in result.failed["broken"]
        assert broken.attempts == 5
        assert pipe.breakers.open_circuits() == ["broken"]
        clock.now += 10.0  # 60 s since it opened: one retry, which fails and opens it again
        pipe.tick()
        assert broken.attempts == 6
        pipe.tick()
        assert broken.attempts == 6
        clock.now += 60.0
        broken.healed = True
        assert "broken" not in pipe.tick().failed
        assert pipe.breakers.open_circuits() == []
        for _ in range(3):
            pipe.tick()
        assert broken.attempts == 10  # closed: sampled every tick again
    finally:
        pipe.close(2.0)


def test_the_pause_and_threshold_are_settings(make_settings: Callable[..., Settings]) -> None:
    clock = FakeClock()
    pipe, broken = _pipeline(make_settings(health={"failures_to_open": 2, "retry_after": 5.0}), clock)
    try:
        for _ in range(4):
            pipe.tick()
        assert broken.attempts == 2
        clock.now += 5.0
        pipe.tick()
        assert broken.attempts == 3
    finally:
        pipe.close(2.0)


@dataclass
class _Stats:
    last_error: str | None = None


@dataclass
class _Runner:
    name: str
    stats: _Stats = field(default_factory=_Stats)


class AlertsWithChannels:
    """The part of the alert manager the health reads: its channel runners (behind duck typing)."""

    def __init__(self, *runners: _Runner) -> None:
        self._runners = list(runners)

    def runners(self) -> list[_Runner]:
        return list(self._runners)

    def submit(self, finding: object) -> None:
        return None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _health_points(pipe: Pipeline) -> dict[str, float]:
    assert pipe.last_result is not None
    return {
        str((p.attributes or {})["otel_sysops.health.state"]): float(p.value)
        for m, p in number_points(pipe.last_result.data)
        if m.name == "otel_sysops.health"
    }


def test_with_default_settings_a_collector_failing_every_tick_is_paused_and_readyz_says_why(
    make_settings: Callable[..., Settings],
) -> None:
    """The agent as configured by default, its one collector failing every tick: after 5 failures it
    is no longer sampled every tick (the 60 s pause: ten in-process ticks take far less), and the
    agent reports critical in /readyz (503) and in its own telemetry instead of looking healthy."""
    settings = make_settings(
        prometheus={"enabled": False, "port": 0},
        instrumentation={"enabled": ["no-such-collector"]},
        analyzers={"enabled": False},
    )
    agent = Agent(settings)
    broken = BrokenCollector(CollectorContext("broken", settings))
    agent.pipeline.add_collector("broken", broken)
    agent._start_http()
    assert agent.bound is not None
    host, port = agent.bound
    try:
        for _ in range(10):
            agent.pipeline.tick()
        assert broken.attempts == 5  # not retried on every tick forever
        status, body = _get(f"http://{host}:{port}/readyz")
        assert (status, "critical" in body, "broken" in body) == (503, True, True), body
        assert _health_points(agent.pipeline)["critical"] == 1
    finally:
        assert agent.http is not None
        agent.http.close(2.0)
        agent.pipeline.close(2.0)


def test_agent_health_in_readyz_and_self_telemetry(make_settings: Callable[..., Settings]) -> None:
    from otel_sysops.breaker import CollectorBreakers

    settings = make_settings(
        prometheus={"enabled": False, "port": 0},
        instrumentation={"enabled": ["no-such-collector"]},
        analyzers={"enabled": False},
    )
    agent = Agent(settings)
    agent.pipeline.breakers = CollectorBreakers(clock=FakeClock())
    broken = BrokenCollector(CollectorContext("broken", settings))
    agent.pipeline.add_collector("broken", broken)
    agent._start_http()
    assert agent.bound is not None
    host, port = agent.bound
    readyz = f"http://{host}:{port}/readyz"
    try:
        # None collecting: critical, not ready (alive: /healthz still 200, a restart fixes nothing).
        agent.pipeline.tick()
        agent.pipeline.tick()
        assert agent.agent_health().state == "critical"
        status, body = _get(readyz)
        assert status == 503
        assert "health critical: 0/1 collectors collecting; failing collectors: broken" in body
        assert _get(f"http://{host}:{port}/healthz")[0] == 200
        assert _health_points(agent.pipeline) == {"healthy": 0, "degraded": 0, "critical": 1}

        # Some collecting: degraded, ready.
        agent.pipeline.add_collector("working", WorkingCollector(CollectorContext("working", settings)))
        agent.pipeline.tick()
        agent.pipeline.tick()
        status, body = _get(readyz)
        assert status == 200
        assert "health degraded: 1/2 collectors collecting; failing collectors: broken" in body
        assert _health_points(agent.pipeline) == {"healthy": 0, "degraded": 1, "critical": 0}
        assert agent.pipeline.last_result is not None
        circuits = {
            str((p.attributes or {})["otel_sysops.collector"]): float(p.value)
            for m, p in number_points(agent.pipeline.last_result.data)
            if m.name == "otel_sysops.collector.circuit.open"
        }
        assert circuits == {"broken": 0.0, "working": 0.0}  # 4 failures so far: not open yet
        for _ in range(3):
            agent.pipeline.tick()
        assert agent.pipeline.breakers.open_circuits() == ["broken"]

        # All collecting, one channel failing: still degraded.
        broken.healed = True
        agent.pipeline.breakers = CollectorBreakers()
        agent.alerts = AlertsWithChannels(_Runner("slack", _Stats("HTTP 500")), _Runner("email"))
        agent.pipeline.tick()
        judged = agent.agent_health()
        assert (judged.state, judged.failing_channels) == ("degraded", ("slack",))
        assert "failing channels: slack" in _get(readyz)[1]

        agent.alerts = AlertsWithChannels(_Runner("email"))
        agent.pipeline.tick()
        agent.pipeline.tick()
        status, body = _get(readyz)
        assert status == 200
        assert "health healthy: 2/2 collectors collecting" in body
        assert _health_points(agent.pipeline) == {"healthy": 1, "degraded": 0, "critical": 0}
    finally:
        assert agent.http is not None
        agent.http.close(2.0)
        agent.pipeline.close(2.0)


@pytest.mark.parametrize(
    ("failed", "state"),
    [({}, "healthy"), ({"a": "x"}, "degraded"), ({"a": "x", "b": "y"}, "critical")],
)
def test_judge_health(failed: dict[str, str], state: str) -> None:
    from otel_sysops.breaker import judge_health

    assert judge_health(["a", "b"], failed).state == state
    assert judge_health([], {}).state == "critical"
