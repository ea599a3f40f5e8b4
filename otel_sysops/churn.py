"""Instruments for series that come and go (per process, per container, per GPU process).

The SDK keeps an aggregation for every attribute set an observable instrument ever reported and,
past its cardinality limit (2,000), folds all new ones into one `otel.metric.overflow` point for
good. A host runs through tens of thousands of PIDs a day, so per-process series cannot live in
SDK storage. These instruments keep no history: each tick their callbacks are called once and the
points are built straight into that tick's `MetricsData`, so memory follows the live set only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    NumberDataPoint,
    Sum,
)

from .catalog import InstrumentCatalog

_log = logging.getLogger(__name__)

# Departed attribute sets a stable counter may remember start times for, beyond as many as are
# live: past that it forgets the departed ones (a host runs through thousands of PIDs an hour).
_DEPARTED_SLACK = 64

ChurnCallback = Callable[[CallbackOptions], Iterable[Observation]]
Kind = Literal["gauge", "counter", "updowncounter"]


def _attr_key(attributes: object) -> frozenset[tuple[str, object]]:
    if not attributes:
        return frozenset()
    assert isinstance(attributes, dict)
    return frozenset((k, v if not isinstance(v, list) else tuple(v)) for k, v in attributes.items())


@dataclass(slots=True)
class _ChurningInstrument:
    name: str
    kind: Kind
    unit: str
    description: str
    callbacks: Sequence[ChurnCallback]
    # Start time of each live attribute set of a counter; pruned to the live set every tick.
    starts: dict[frozenset[tuple[str, object]], int] = field(default_factory=dict)
    # `starts` by the attributes' items in the order given (no frozenset built per point); a
    # stable meter's callbacks report them in the same order tick after tick.
    by_items: dict[tuple[tuple[str, object], ...], int] = field(default_factory=dict)


class ChurningMeter:
    """Create observable instruments whose attribute sets churn; one per instrumentation scope.

    With `stable=True` it stands in for the SDK's storage of ordinary observable instruments and
    reports what the SDK would: a counter's start time is the collection before its attribute set
    was first seen, a gauge has none, and a callback that raises loses only its own points (logged,
    as the SDK logs it). Unlike the SDK, which keeps a start time for every attribute set it ever
    saw, it forgets the departed ones once they outnumber the live ones (plus a margin): memory
    follows the live set, and an attribute set that comes back after that starts anew."""

    def __init__(self, scope: str, catalog: InstrumentCatalog | None = None, *, stable: bool = False) -> None:
        self.scope = scope
        self._catalog = catalog
        self._instruments: list[_ChurningInstrument] = []
        self._lock = threading.Lock()
        self._stable = stable
        self._previous_ns: int | None = None
        self._failing: set[str] = set()

    def _add(
        self, name: str, kind: Kind, callbacks: Sequence[ChurnCallback], unit: str, description: str
    ) -> None:
        with self._lock:
            self._instruments.append(_ChurningInstrument(name, kind, unit, description, list(callbacks)))
        if self._catalog is not None:
            self._catalog.record(self.scope, name, f"churning {kind}", unit, description)

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[ChurnCallback], unit: str = "", description: str = ""
    ) -> None:
        """Register a gauge whose attribute sets may churn."""
        self._add(name, "gauge", callbacks, unit, description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[ChurnCallback], unit: str = "", description: str = ""
    ) -> None:
        """Register a monotonic cumulative counter whose attribute sets may churn."""
        self._add(name, "counter", callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[ChurnCallback], unit: str = "", description: str = ""
    ) -> None:
        """Register a non-monotonic cumulative sum whose attribute sets may churn."""
        self._add(name, "updowncounter", callbacks, unit, description)

    def collect(self, time_ns: int | None = None) -> list[Metric]:
        """Call every callback once and return this tick's points; nothing is kept past the tick."""
        now = time.time_ns() if time_ns is None else time_ns
        if self._stable:
            return self._collect_stable(now)
        options = CallbackOptions()
        metrics: list[Metric] = []
        with self._lock:
            instruments = list(self._instruments)
        for inst in instruments:
            points: list[NumberDataPoint] = []
            live: dict[frozenset[tuple[str, object]], int] = {}
            for callback in inst.callbacks:
                for obs in callback(options):
                    attrs = dict(obs.attributes or {})
                    start = None
                    if inst.kind != "gauge":
                        key = _attr_key(attrs)
                        start = live[key] = inst.starts.get(key, now)
                    points.append(
                        NumberDataPoint(
                            attributes=attrs,
                            start_time_unix_nano=start or 0,
                            time_unix_nano=now,
                            value=obs.value,
                        )
                    )
            inst.starts = live
            if not points:
                continue
            metrics.append(_metric(inst, points))
        return metrics

    def _collect_stable(self, now: int) -> list[Metric]:
        first_start = self._previous_ns or now
        self._previous_ns = now
        options = CallbackOptions()
        metrics: list[Metric] = []
        with self._lock:
            instruments = list(self._instruments)
        for inst in instruments:
            points: list[NumberDataPoint] = []
            gauge = inst.kind == "gauge"
            starts, by_items = inst.starts, inst.by_items
            failed = False
            for callback in inst.callbacks:
                try:
                    observations = list(callback(options))
                except Exception as exc:  # noqa: BLE001 - as the SDK: one callback's failure only
                    level = logging.DEBUG if inst.name in self._failing else logging.WARNING
                    self._failing.add(inst.name)
                    _log.log(level, "callback of %s failed: %s: %s", inst.name, type(exc).__name__, exc)
                    failed = True
                    continue
                for obs in observations:
                    attrs = obs.attributes
                    attrs = dict(attrs) if attrs else {}
                    start: int | None = None
                    if not gauge:
                        items: tuple[tuple[str, object], ...] | None = tuple(attrs.items())
                        try:
                            start = by_items.get(items)  # type: ignore[arg-type]
                        except TypeError:  # a list-valued attribute
                            items = None
                        if start is None:
                            key = _attr_key(attrs)
                            start = starts.get(key)
                            if start is None:
                                start = starts[key] = first_start
                            if items is not None:
                                by_items[items] = start
                    points.append(NumberDataPoint(attrs, start, now, obs.value))  # type: ignore[arg-type]
            if not failed and len(starts) > 2 * len(points) + _DEPARTED_SLACK:
                # Keep the live ones only; not after a failed callback, whose series are not gone.
                inst.starts = {_attr_key(p.attributes): p.start_time_unix_nano for p in points}
                inst.by_items = {}
            elif len(by_items) > 2 * len(inst.starts) + _DEPARTED_SLACK:  # attributes in ever new orders
                inst.by_items = {}
            if points:
                metrics.append(_metric(inst, points))
        return metrics


def _metric(inst: _ChurningInstrument, points: list[NumberDataPoint]) -> Metric:
    data: Gauge | Sum
    if inst.kind == "gauge":
        data = Gauge(data_points=points)
    else:
        data = Sum(
            data_points=points,
            aggregation_temporality=AggregationTemporality.CUMULATIVE,
            is_monotonic=inst.kind == "counter",
        )
    return Metric(name=inst.name, description=inst.description, unit=inst.unit, data=data)
