"""Drive analyzers through the real pipeline: a collector that reports crafted values, a recording sink."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.alerts import Finding
from otel_sysops.churn import ChurningMeter
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Analyzer, AnalyzerContext, Collector, CollectorContext
from otel_sysops.settings import Settings

Series = dict[tuple[tuple[str, str], ...], float]


class CraftedCollector(Collector[dict[str, Series]]):
    """Report, as observable gauges, whatever values the test set for this tick (metric -> attrs -> value)."""

    def __init__(self, ctx: CollectorContext, metrics: list[str]) -> None:
        super().__init__(ctx)
        self.metrics = metrics
        self.next: dict[str, Series] = {}

    def sample(self, now: float) -> dict[str, Series]:
        return {m: dict(v) for m, v in self.next.items()}

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        for metric in self.metrics:
            meter.create_observable_gauge(metric, [self._callback(metric)], "1")

    def _callback(self, metric: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            assert self.snapshot is not None
            return [Observation(v, dict(k)) for k, v in self.snapshot.get(metric, {}).items()]

        return observe


@dataclass
class RecordingSink:
    """An AlertSink that keeps every finding."""

    findings: list[Finding] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, finding: Finding) -> None:
        with self.lock:
            self.findings.append(finding)

    def take(self) -> list[Finding]:
        with self.lock:
            out, self.findings = self.findings, []
        return out


@dataclass
class Rig:
    """A pipeline with one crafted collector, analyzers added by the test, and a recording sink."""

    pipe: Pipeline
    collector: CraftedCollector
    sink: RecordingSink
    settings: Settings
    now: float = 1_700_000_000.0

    def add(self, name: str, cls: type[Analyzer]) -> Analyzer:
        analyzer = cls(AnalyzerContext(name, self.settings, self.pipe.store))
        self.pipe.add_analyzer(name, analyzer)
        return analyzer

    def tick(self, values: dict[str, Series], step: float | None = None) -> list[Finding]:
        """Report `values` at the next tick; return the findings it produced."""
        self.collector.next = values
        self.now += self.settings.interval if step is None else step
        self.pipe.tick(timestamp=self.now)
        return self.sink.take()

    def run(self, metric: str, attrs: dict[str, str], values: Iterable[float]) -> list[list[Finding]]:
        """Tick once per value of one series; return the findings of every tick."""
        key = tuple(sorted(attrs.items()))
        return [self.tick({metric: {key: v}}) for v in values]


@pytest.fixture
def rig(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Rig]]:
    made: list[Pipeline] = []

    def build(metrics: list[str], **overrides: Any) -> Rig:
        overrides.setdefault("interval", 10.0)
        overrides.setdefault("store", {"max_series": 20_000, "evict_after": 900.0})
        settings = make_settings(**overrides)
        sink = RecordingSink()
        pipe = Pipeline(settings, load=False, alert_sink=sink)
        made.append(pipe)
        collector = CraftedCollector(CollectorContext("crafted", settings), metrics)
        pipe.add_collector("crafted", collector)
        return Rig(pipe, collector, sink, settings)

    yield build
    for pipe in made:
        pipe.close(2.0)
