"""The sink interface, and the sink that fills the ring store."""

from __future__ import annotations

import math
from typing import Protocol

from opentelemetry.sdk.metrics.export import Gauge, HistogramDataPoint, MetricsData, Sum

from otel_sysops.store import AttrKey, RingStore, attr_key


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

    The canonical key of each attribute set is cached across ticks (for the live series only),
    so a stable series costs a dictionary lookup per tick, not a sort.
    """

    name = "store"

    def __init__(self, store: RingStore) -> None:
        self.store = store
        self._keys: dict[tuple[str, tuple[tuple[str, object], ...]], AttrKey] = {}

    def consume(self, data: MetricsData, timestamp: float) -> None:
        self.store.begin_tick(timestamp)
        old: dict[tuple[str, tuple[tuple[str, object], ...]], AttrKey] = self._keys
        new: dict[tuple[str, tuple[tuple[str, object], ...]], AttrKey] = {}
        batch: list[tuple[str, list[AttrKey], list[float]]] = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if not isinstance(metric.data, Gauge | Sum):
                        continue
                    keys: list[AttrKey] = []
                    values: list[float] = []
                    name = metric.name
                    for point in metric.data.data_points:
                        if isinstance(point, HistogramDataPoint):
                            continue
                        attributes = point.attributes or {}
                        ident: tuple[str, tuple[tuple[str, object], ...]] | None = (
                            name,
                            tuple(attributes.items()),
                        )
                        try:
                            key = old.get(ident)  # type: ignore[arg-type]
                        except TypeError:  # a list-valued attribute: not hashable as given
                            ident, key = None, None
                        if key is None:
                            key = attr_key(attributes)
                        if ident is not None:
                            new[ident] = key
                        keys.append(key)
                        value = float(point.value)
                        values.append(value if math.isfinite(value) else math.nan)
                    if keys:
                        batch.append((name, keys, values))
        self.store.put_many(batch)
        self._keys = new

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        return None
