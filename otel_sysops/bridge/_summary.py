"""The heartbeat's summary of the last collection: CPU busy, memory used, fullest filesystem (0..1)."""

from __future__ import annotations

from typing import Any

from otel_sysops.pipeline import Pipeline, iter_points


def heartbeat_summary(pipeline: Pipeline) -> dict[str, float]:
    """Return {"cpu", "memory", "disk"} from the last tick; a key is absent when its metric is."""
    result = pipeline.last_result
    if result is None:
        return {}
    idle: list[float] = []
    memory: float | None = None
    disk: float | None = None
    for metric, point in iter_points(result.data):
        name = metric.name
        if name not in (
            "system.cpu.utilization",
            "system.memory.utilization",
            "system.filesystem.utilization",
        ):
            continue
        value: Any = getattr(point, "value", None)
        attrs = getattr(point, "attributes", None) or {}
        if not isinstance(value, int | float):
            continue
        if name == "system.cpu.utilization" and attrs.get("cpu.mode") == "idle":
            idle.append(float(value))
        elif name == "system.memory.utilization" and attrs.get("system.memory.state") == "used":
            memory = float(value)
        elif name == "system.filesystem.utilization":
            disk = float(value) if disk is None else max(disk, float(value))
    out: dict[str, float] = {}
    if idle:
        out["cpu"] = round(max(0.0, 1.0 - sum(idle) / len(idle)), 4)
    if memory is not None:
        out["memory"] = round(memory, 4)
    if disk is not None:
        out["disk"] = round(disk, 4)
    return out
