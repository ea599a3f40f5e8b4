"""Ground floor: a circuit breaker per collector, and the agent's health judged from them.

A collector that fails `failures_to_open` ticks in a row is no longer sampled every tick: its
circuit opens, and it is tried again once `retry_after` seconds have passed (half-open). One
success closes it; a failed retry opens it for another `retry_after`. The agent is *healthy* when
every collector and channel works, *degraded* when some fail, *critical* when no collector is
collecting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

_log = logging.getLogger("otel_sysops.breaker")

HealthState = Literal["healthy", "degraded", "critical"]
HEALTH_STATES: tuple[HealthState, ...] = ("healthy", "degraded", "critical")


@dataclass
class _Circuit:
    failures: int = 0  # consecutive
    opened_at: float | None = None
    last_error: str = ""


class CollectorBreakers:
    """One circuit per collector name; thread-safe (ticks run on a worker thread)."""

    def __init__(
        self,
        failures_to_open: int = 5,
        retry_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.retry_after = retry_after
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def allow(self, name: str) -> str | None:
        """Return None when `name` may be sampled now, else why not (its circuit is open)."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return None
            wait = circuit.opened_at + self.retry_after - self.clock()
            if wait <= 0:
                return None  # half-open: one attempt
            return (
                f"circuit open after {circuit.failures} consecutive failures "
                f"(last: {circuit.last_error}); next retry in {wait:.0f}s"
            )

    def record(self, name: str, error: str | None) -> None:
        """Record one sample of `name`: None for a success, else the error."""
        with self._lock:
            circuit = self._circuits.setdefault(name, _Circuit())
            if error is None:
                if circuit.opened_at is not None:
                    _log.info("collector %s: collecting again, circuit closed", name)
                self._circuits[name] = _Circuit()
                return
            circuit.failures += 1
            circuit.last_error = error
            if circuit.opened_at is not None or circuit.failures >= self.failures_to_open:
                if circuit.opened_at is None:
                    _log.warning(
                        "collector %s: circuit opened after %d consecutive failures, retry in %gs: %s",
                        name,
                        circuit.failures,
                        self.retry_after,
                        error,
                    )
                circuit.opened_at = self.clock()

    def is_open(self, name: str) -> bool:
        """Return whether the circuit of `name` is open (including half-open, awaiting its retry)."""
        with self._lock:
            circuit = self._circuits.get(name)
            return circuit is not None and circuit.opened_at is not None

    def states(self) -> dict[str, bool]:
        """Return every known collector's circuit: True when open."""
        with self._lock:
            return {n: c.opened_at is not None for n, c in self._circuits.items()}

    def open_circuits(self) -> list[str]:
        """Return the names whose circuit is open, sorted."""
        with self._lock:
            return sorted(n for n, c in self._circuits.items() if c.opened_at is not None)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the circuits of collectors no longer loaded."""
        wanted = set(keep)
        with self._lock:
            for name in [n for n in self._circuits if n not in wanted]:
                del self._circuits[name]


@dataclass(frozen=True, slots=True)
class AgentHealth:
    """The agent's health: healthy, degraded (some collectors or channels failing), critical."""

    state: HealthState
    failing_collectors: tuple[str, ...] = ()
    failing_channels: tuple[str, ...] = ()
    collecting: int = 0
    collectors: int = 0
    reasons: Mapping[str, str] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """One line: the state and what is failing."""
        parts = [f"health {self.state}: {self.collecting}/{self.collectors} collectors collecting"]
        if self.failing_collectors:
            parts.append("failing collectors: " + ", ".join(self.failing_collectors))
        if self.failing_channels:
            parts.append("failing channels: " + ", ".join(self.failing_channels))
        return "; ".join(parts)


def judge_health(
    collectors: Iterable[str],
    failed: Mapping[str, str],
    open_circuits: Iterable[str] = (),
    failing_channels: Iterable[str] = (),
) -> AgentHealth:
    """Judge the agent from its collectors, those that failed the last tick or are open, and channels."""
    names = sorted(set(collectors))
    failing = sorted({n for n in names if n in failed} | {n for n in open_circuits if n in names})
    channels = tuple(sorted(set(failing_channels)))
    collecting = len(names) - len(failing)
    state: HealthState
    if collecting == 0:
        state = "critical"
    elif failing or channels:
        state = "degraded"
    else:
        state = "healthy"
    reasons = {n: failed.get(n, "circuit open") for n in failing}
    return AgentHealth(state, tuple(failing), channels, collecting, len(names), reasons)


class PipelineView(Protocol):
    """What the health is judged from: the pipeline's collectors, last tick, breakers, alert sink."""

    @property
    def collectors(self) -> Mapping[str, Any]: ...
    @property
    def last_result(self) -> Any: ...
    @property
    def breakers(self) -> CollectorBreakers: ...
    @property
    def alerts(self) -> object: ...


def failing_channels(alerts: object) -> list[str]:
    """Return the alert channels whose latest delivery failed (the alert manager's channel runners)."""
    runners = getattr(alerts, "runners", None)
    if not callable(runners):
        return []
    out = []
    for runner in runners():
        stats = getattr(runner, "stats", None)
        if getattr(stats, "last_error", None) is not None:
            out.append(str(getattr(runner, "name", "?")))
    return out


def pipeline_health(pipeline: PipelineView, alerts: object | None = None) -> AgentHealth:
    """Judge a pipeline from its last tick, its open circuits and the channels of `alerts`
    (default: the pipeline's alert sink)."""
    last = pipeline.last_result
    failed: Mapping[str, str] = getattr(last, "failed", None) or {}
    channels = failing_channels(pipeline.alerts if alerts is None else alerts)
    return judge_health(pipeline.collectors, failed, pipeline.breakers.open_circuits(), channels)


def register_health_telemetry(meter: Meter, pipeline: PipelineView) -> None:
    """Create `otel_sysops.health` (1 for the current state) and `otel_sysops.collector.circuit.open`."""

    def state(_: CallbackOptions) -> Iterable[Observation]:
        current = pipeline_health(pipeline).state
        return [Observation(int(s == current), {"otel_sysops.health.state": s}) for s in HEALTH_STATES]

    def circuits(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(int(is_open), {"otel_sysops.collector": name})
            for name, is_open in sorted(pipeline.breakers.states().items())
        ]

    meter.create_observable_gauge(
        "otel_sysops.health",
        [state],
        "1",
        "The agent's health: 1 for the current state (healthy, degraded, critical), 0 for the others",
    )
    meter.create_observable_gauge(
        "otel_sysops.collector.circuit.open",
        [circuits],
        "1",
        "1 while a collector's circuit breaker is open (failing, retried only after a pause), else 0",
    )
