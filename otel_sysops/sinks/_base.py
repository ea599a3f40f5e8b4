"""The sink interface, and the sink that fills the ring store."""

from __future__ import annotations

import itertools
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from opentelemetry.sdk.metrics.export import Gauge, MetricsData, Sum

from otel_sysops.store import RingStore, attr_key


class Sink(Protocol):
    """Consume one tick's collection without blocking the tick (no network I/O inline)."""

    name: str

    def consume(self, data: MetricsData, timestamp: float) -> None:
        """Take the collection made at `timestamp` (seconds since the epoch)."""

    def failures(self) -> int:
        """Return how many exports failed so far."""

    def close(self, timeout: float) -> None:
        """Flush what is pending within `timeout` seconds and stop."""


class StoreSink:
    """Append every number data point of a collection to the ring store.

    The store columns of each metric's series are cached across ticks: while a metric reports
    the same attribute sets in the same order as last tick (and the store freed no column), a
    tick costs building its identity list and comparing it, with no sort, hash or store lookup
    per point. The tick's values go to the store as one float64 array.
    """

    name = "store"

    def __init__(self, store: RingStore) -> None:
        self.store = store
        # Per number metric, by its position in the collection: name, identities, columns.
        self._layout: list[tuple[str, list[tuple[tuple[str, object], ...]], NDArray[np.intp]]] = []
        self._generation = -1
        self._unique = True  # whether last tick's columns were all distinct

    def consume(self, data: MetricsData, timestamp: float) -> None:
        store = self.store
        store.begin_tick(timestamp)
        fresh = store.generation != self._generation
        old = self._layout
        layout: list[tuple[str, list[tuple[tuple[str, object], ...]], NDArray[np.intp]]] = []
        names: list[str] = []
        values: list[float | int] = []
        changed = fresh
        # Cached metrics not yet told to the store: marked seen before any new series is given a
        # column, so a full store making room frees exactly what put() in this order would.
        untold: list[int] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    body = metric.data
                    if not isinstance(body, Gauge | Sum) or not body.data_points:
                        continue
                    points = body.data_points
                    idents: list[tuple[tuple[str, object], ...]] = [
                        tuple(p.attributes.items()) if p.attributes else () for p in points
                    ]
                    values.extend([p.value for p in points])
                    name = metric.name
                    n = len(layout)
                    if not fresh and n < len(old) and old[n][0] == name and old[n][1] == idents:
                        slots = old[n][2]
                        untold.append(n)
                    else:
                        changed = True
                        if untold:
                            store.touch([layout[i][0] for i in untold], [layout[i][2] for i in untold])
                            untold = []
                        slots = store.resolve(name, [attr_key(p.attributes) for p in points])
                    layout.append((name, idents, slots))
                    names.append(name)
        if not layout:
            self._layout, self._generation = [], store.generation
            return
        slots = np.concatenate([entry[2] for entry in layout]) if len(layout) > 1 else layout[0][2]
        vals = np.array(values, dtype=np.float64)
        vals[~np.isfinite(vals)] = np.nan
        if changed or len(layout) != len(old):
            kept = slots[slots >= 0]
            self._unique = np.unique(kept).size == kept.size
        bounds = None if self._unique else list(itertools.accumulate(entry[2].size for entry in layout))
        store.write(names, slots, vals, bounds)
        # A refused series is asked for again next tick (and counted again), as put() does.
        self._layout = [] if (slots < 0).any() else layout
        self._generation = store.generation

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        return None
