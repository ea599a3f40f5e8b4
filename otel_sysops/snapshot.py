"""Render one collection for people (a table grouped by metric) or programs (JSON)."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Histogram, MetricsData, Sum
from opentelemetry.sdk.resources import Resource


def _kind(data: object) -> str:
    if isinstance(data, Sum):
        return "counter" if data.is_monotonic else "updowncounter"
    if isinstance(data, Gauge):
        return "gauge"
    if isinstance(data, Histogram):
        return "histogram"
    return type(data).__name__.lower()


def to_json(data: MetricsData, resource: Resource) -> dict[str, Any]:
    """Return `{"resource": {...}, "metrics": [{"name", "unit", "type", "points": [...]}]}`."""
    metrics: dict[str, dict[str, Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                entry = metrics.setdefault(
                    metric.name,
                    {
                        "name": metric.name,
                        "unit": metric.unit,
                        "type": _kind(metric.data),
                        "description": metric.description,
                        "points": [],
                    },
                )
                for point in metric.data.data_points:
                    value: Any = getattr(point, "value", None)
                    if isinstance(metric.data, Histogram) or value is None:
                        value = {"count": getattr(point, "count", None), "sum": getattr(point, "sum", None)}
                    entry["points"].append({"attributes": dict(point.attributes or {}), "value": value})
    return {
        "resource": dict(resource.attributes),
        "metrics": sorted(metrics.values(), key=lambda m: m["name"]),
    }


def _fmt_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def to_table(doc: dict[str, Any]) -> str:
    """Return the JSON form as an aligned text table grouped by metric."""
    lines = [f"resource: {', '.join(f'{k}={v}' for k, v in doc['resource'].items())}", ""]
    for metric in doc["metrics"]:
        unit = f" [{metric['unit']}]" if metric["unit"] else ""
        lines.append(f"{metric['name']}{unit} ({metric['type']}, {len(metric['points'])} points)")
        rows = [
            (", ".join(f"{k}={v}" for k, v in sorted(p["attributes"].items())) or "-", _fmt_value(p["value"]))
            for p in metric["points"]
        ]
        width = max((len(r[0]) for r in rows), default=0)
        lines.extend(f"  {attrs.ljust(width)}  {value}" for attrs, value in rows)
    return "\n".join(lines)
