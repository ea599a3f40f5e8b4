"""Delta temporality for OTLP, computed from the cumulative points the pipeline produces.

`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta` asks for delta counters and histograms
(the specification's table: Counter and Histogram delta; UpDownCounter and gauges unchanged). The
pipeline keeps one cumulative SDK collection for every sink, so the OTLP path converts: each
monotonic sum point becomes the increase since the previous export of the same series, starting
where that one ended. The first point of a series has no previous one and is held back (its
cumulative total may cover time before the agent started); a counter that went down (a reset)
reports its new value. Series that disappear are forgotten, so the state stays as large as one
collection. `lowmemory` asks for delta only for synchronous instruments; the agent's instruments
are asynchronous, so it exports cumulative points like `cumulative`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

from ._otlp import Exporter

SeriesKey = tuple[Any, ...]


def _key(resource: ResourceMetrics, scope: ScopeMetrics, metric: Metric, attributes: Any) -> SeriesKey:
    return (
        tuple(sorted(resource.resource.attributes.items())),
        scope.scope.name,
        metric.name,
        tuple(sorted((attributes or {}).items())),
    )


class DeltaConverter:
    """Turn cumulative collections into delta ones, remembering the last point of each series."""

    def __init__(self) -> None:
        self._last: dict[SeriesKey, NumberDataPoint | HistogramDataPoint] = {}

    def convert(self, data: MetricsData) -> MetricsData:
        """Return `data` with monotonic sums and histograms as deltas since the previous call."""
        seen: dict[SeriesKey, NumberDataPoint | HistogramDataPoint] = {}
        resources = []
        for rm in data.resource_metrics:
            scopes = []
            for sm in rm.scope_metrics:
                metrics = [m for m in (self._metric(rm, sm, metric, seen) for metric in sm.metrics) if m]
                scopes.append(replace(sm, metrics=metrics))
            resources.append(replace(rm, scope_metrics=scopes))
        self._last = seen
        return MetricsData(resource_metrics=resources)

    def _metric(
        self, rm: ResourceMetrics, sm: ScopeMetrics, metric: Metric, seen: dict[SeriesKey, Any]
    ) -> Metric | None:
        data = metric.data
        if (
            isinstance(data, Sum)
            and data.is_monotonic
            and data.aggregation_temporality == AggregationTemporality.CUMULATIVE
        ):
            points: Sequence[Any] = [
                p
                for p in (
                    self._sum_point(_key(rm, sm, metric, q.attributes), q, seen) for q in data.data_points
                )
                if p
            ]
            return (
                replace(
                    metric,
                    data=replace(
                        data, data_points=points, aggregation_temporality=AggregationTemporality.DELTA
                    ),
                )
                if points
                else None
            )
        if isinstance(data, Histogram) and data.aggregation_temporality == AggregationTemporality.CUMULATIVE:
            points = [
                p
                for p in (
                    self._histogram_point(_key(rm, sm, metric, q.attributes), q, seen)
                    for q in data.data_points
                )
                if p
            ]
            return (
                replace(
                    metric,
                    data=replace(
                        data, data_points=points, aggregation_temporality=AggregationTemporality.DELTA
                    ),
                )
                if points
                else None
            )
        return metric

    def _sum_point(
        self, key: SeriesKey, point: NumberDataPoint, seen: dict[SeriesKey, Any]
    ) -> NumberDataPoint | None:
        seen[key] = point
        previous = self._last.get(key)
        if not isinstance(previous, NumberDataPoint) or previous.time_unix_nano >= point.time_unix_nano:
            return None
        if point.value < previous.value:
            # A reset: the counter started again at its start time.
            return point
        return replace(
            point, start_time_unix_nano=previous.time_unix_nano, value=point.value - previous.value
        )

    def _histogram_point(
        self, key: SeriesKey, point: HistogramDataPoint, seen: dict[SeriesKey, Any]
    ) -> HistogramDataPoint | None:
        seen[key] = point
        previous = self._last.get(key)
        if (
            not isinstance(previous, HistogramDataPoint)
            or previous.time_unix_nano >= point.time_unix_nano
            or list(previous.explicit_bounds) != list(point.explicit_bounds)
        ):
            return None
        if point.count < previous.count:
            return point
        return replace(
            point,
            start_time_unix_nano=previous.time_unix_nano,
            count=point.count - previous.count,
            sum=point.sum - previous.sum,
            bucket_counts=[a - b for a, b in zip(point.bucket_counts, previous.bucket_counts, strict=True)],
            # min and max of the interval alone are unknown: the cumulative ones bound them.
        )


class DeltaExporter:
    """An OTLP exporter wrapper that sends deltas; the conversion happens once per collection, in order."""

    def __init__(self, inner: Exporter) -> None:
        self._inner = inner
        self._converter = DeltaConverter()
        self._lock = threading.Lock()
        # The OTLP worker retries a failed export with the same object: convert it once.
        self._converted: tuple[MetricsData, MetricsData] | None = None

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        with self._lock:
            if self._converted is None or self._converted[0] is not metrics_data:
                self._converted = (metrics_data, self._converter.convert(metrics_data))
            converted = self._converted[1]
        return self._inner.export(converted, timeout_millis=timeout_millis, **kwargs)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def with_temporality(exporter: Exporter, temporality: str) -> Exporter:
    """Return the exporter to use for a temporality preference (delta wraps it; others pass it through)."""
    return DeltaExporter(exporter) if temporality == "delta" else exporter
