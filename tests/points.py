"""Typed data points of an SDK collection (`iter_points` yields them as `object`)."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry.sdk.metrics.export import (
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
)

from otel_sysops.pipeline import iter_points

DataPoint = NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint


def data_points(data: MetricsData) -> Iterator[tuple[Metric, DataPoint]]:
    """Yield (metric, data point) for every point of `data`, whatever its kind."""
    for metric, point in iter_points(data):
        assert isinstance(point, NumberDataPoint | HistogramDataPoint | ExponentialHistogramDataPoint)
        yield metric, point


def number_points(data: MetricsData) -> Iterator[tuple[Metric, NumberDataPoint]]:
    """Yield (metric, data point) for every gauge, counter and sum point of `data` (no histogram)."""
    for metric, point in iter_points(data):
        if isinstance(point, NumberDataPoint):
            yield metric, point
