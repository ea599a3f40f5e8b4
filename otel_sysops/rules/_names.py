"""OpenTelemetry metric -> Prometheus name for rules: the very names our /metrics renders.

The translation itself lives with the renderer (`otel_sysops.sinks.metric_name`, the Go
translator's rules); rules only map the catalog's instrument kinds onto it.
"""

from __future__ import annotations

from typing import cast

from otel_sysops.sinks import MetricKind, label_name, metric_name


def prometheus_metric_name(name: str, unit: str, kind: str) -> str:
    """Return the Prometheus name of an instrument: its OTel name, unit and kind.

    `kind` is the instrument kind as the catalog records it: "counter" (a monotonic sum),
    "updowncounter", "gauge" or "histogram" ("churning " in front is ignored).
    """
    return metric_name(name, unit, cast(MetricKind, kind.removeprefix("churning ")))


def prometheus_label_name(key: str) -> str:
    """Return an attribute key as a Prometheus label name (invalid characters become `_`)."""
    return label_name(key)
