"""Run collectors through the real pipeline (SDK reader, churning meters) and index the points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.metrics.export import MetricsData, NumberDataPoint

from otel_sysops.pipeline import Pipeline, iter_points
from otel_sysops.plugin import Collector, CollectorContext
from otel_sysops.settings import Settings

Attrs = frozenset[tuple[str, Any]]


def pipeline_with(
    settings: Settings, name: str, build: Callable[[CollectorContext], Collector[Any]]
) -> tuple[Pipeline, Collector[Any]]:
    """Return a pipeline with only this collector, built on the pipeline's shared context."""
    pipe = Pipeline(settings, load=False)
    collector = build(CollectorContext(name, settings, pipe.files, pipe.errors))
    pipe.add_collector(name, collector)
    return pipe, collector


def points(data: MetricsData, name: str) -> dict[Attrs, float]:
    """Return attribute set -> value of every point of one metric."""
    out: dict[Attrs, float] = {}
    for metric, point in iter_points(data):
        if metric.name == name:
            assert isinstance(point, NumberDataPoint), f"{name} is not a number"
            attrs = frozenset((point.attributes or {}).items())
            assert attrs not in out, f"duplicate point {name} {attrs}"
            out[attrs] = point.value
    return out


def a(**kwargs: Any) -> Attrs:
    """Build an attribute set from keywords, dots written as double underscores."""
    return frozenset((k.replace("__", "."), v) for k, v in kwargs.items())


def names(data: MetricsData) -> set[str]:
    """Return the names of every metric with at least one point."""
    return {metric.name for metric, _ in iter_points(data)}
