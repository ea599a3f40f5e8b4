"""A record of every instrument the plugins create, for `docs/` and the metrics reference."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import GeneratorType
from typing import Any, Protocol

from opentelemetry.metrics import (
    CallbackOptions,
    CallbackT,
    Counter,
    Histogram,
    Meter,
    NoOpObservableCounter,
    NoOpObservableGauge,
    NoOpObservableUpDownCounter,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    Observation,
    UpDownCounter,
    _Gauge,
)

PlainCallback = Callable[[CallbackOptions], Iterable[Observation]]


class ObservableMeter(Protocol):
    """Where a RecordingMeter puts observable instruments instead of SDK storage (a ChurningMeter)."""

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[PlainCallback], unit: str = "", description: str = ""
    ) -> None: ...

    def create_observable_counter(
        self, name: str, callbacks: Sequence[PlainCallback], unit: str = "", description: str = ""
    ) -> None: ...

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[PlainCallback], unit: str = "", description: str = ""
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """One registered instrument: its scope, name, kind, unit and description."""

    scope: str
    name: str
    kind: str
    unit: str
    description: str


class InstrumentCatalog:
    """Collect the instruments registered through recording meters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], InstrumentInfo] = {}

    def record(self, scope: str, name: str, kind: str, unit: str, description: str) -> None:
        """Remember an instrument (the first registration of a name in a scope wins)."""
        with self._lock:
            self._items.setdefault((scope, name), InstrumentInfo(scope, name, kind, unit, description))

    def items(self) -> list[InstrumentInfo]:
        """Return every recorded instrument, sorted by name."""
        with self._lock:
            return sorted(self._items.values(), key=lambda i: (i.name, i.scope))


def _plain(
    callbacks: Sequence[CallbackT] | None,
) -> list[Callable[[CallbackOptions], Iterable[Observation]]] | None:
    """Return the callbacks if all are plain functions; None if one is a generator (the SDK's)."""
    plain: list[Callable[[CallbackOptions], Iterable[Observation]]] = []
    for callback in callbacks or ():
        if isinstance(callback, GeneratorType) or not callable(callback):
            return None
        plain.append(callback)
    return plain


class RecordingMeter(Meter):
    """A Meter that records each instrument it creates in a catalog, then delegates to the SDK."""

    def __init__(
        self, inner: Meter, scope: str, catalog: InstrumentCatalog, observables: ObservableMeter | None = None
    ) -> None:
        super().__init__(scope)
        self._inner = inner
        self._scope = scope
        self._catalog = catalog
        # Observable instruments go here instead of SDK storage when given (same points, less work).
        self._observables = observables

    def _note(self, name: str, kind: str, unit: str, description: str) -> None:
        self._catalog.record(self._scope, name, kind, unit, description)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        self._note(name, "counter", unit, description)
        return self._inner.create_counter(name, unit, description)

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        self._note(name, "updowncounter", unit, description)
        return self._inner.create_up_down_counter(name, unit, description)

    def create_observable_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableCounter:
        self._note(name, "counter", unit, description)
        if self._observables is not None and (plain := _plain(callbacks)) is not None:
            self._observables.create_observable_counter(name, plain, unit, description)
            return NoOpObservableCounter(name, unit=unit, description=description)
        return self._inner.create_observable_counter(name, callbacks, unit, description)

    def create_histogram(self, name: str, unit: str = "", description: str = "", **kwargs: Any) -> Histogram:
        self._note(name, "histogram", unit, description)
        return self._inner.create_histogram(name, unit, description, **kwargs)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> _Gauge:
        self._note(name, "gauge", unit, description)
        create: Callable[[str, str, str], _Gauge] = self._inner.create_gauge
        return create(name, unit, description)

    def create_observable_gauge(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableGauge:
        self._note(name, "gauge", unit, description)
        if self._observables is not None and (plain := _plain(callbacks)) is not None:
            self._observables.create_observable_gauge(name, plain, unit, description)
            return NoOpObservableGauge(name, unit=unit, description=description)
        return self._inner.create_observable_gauge(name, callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Sequence[CallbackT] | None = None, unit: str = "", description: str = ""
    ) -> ObservableUpDownCounter:
        self._note(name, "updowncounter", unit, description)
        if self._observables is not None and (plain := _plain(callbacks)) is not None:
            self._observables.create_observable_up_down_counter(name, plain, unit, description)
            return NoOpObservableUpDownCounter(name, unit=unit, description=description)
        return self._inner.create_observable_up_down_counter(name, callbacks, unit, description)
