"""The manager's own metrics come out of the pipeline's collection like every other metric."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.metrics.export import NumberDataPoint

from otel_sysops.agent import Agent
from otel_sysops.alerts import AlertManager, Finding, Severity
from otel_sysops.app import alert_service
from otel_sysops.pipeline import iter_points
from otel_sysops.settings import Settings


def test_alert_metrics_in_the_tick(make_settings: Callable[..., Settings]) -> None:
    agent = Agent(make_settings(alerts={"group_window": 60}))
    manager = alert_service(agent.context())
    assert isinstance(manager, AlertManager)
    manager.submit(Finding("cpu", "system.cpu.utilization", {}, Severity.CRITICAL, "busy"))
    manager.submit(Finding("cpu", "system.cpu.utilization", {}, Severity.CRITICAL, "busy"))
    manager.add_silence({"rule": "mem"}, 60)
    manager.submit(Finding("mem", "system.memory.utilization", {}, Severity.WARNING, "full"))
    try:
        data = agent.pipeline.tick().data
    finally:
        agent.pipeline.close(5.0)
    points: dict[str, dict[tuple[tuple[str, object], ...], float]] = {}
    for metric, point in iter_points(data):
        if metric.name.startswith("otel_sysops.alerts."):
            assert isinstance(point, NumberDataPoint), metric.name
            attrs = tuple(sorted((point.attributes or {}).items()))
            points.setdefault(metric.name, {})[attrs] = point.value
    findings = points["otel_sysops.alerts.findings"]
    assert findings[(("otel_sysops.alerts.outcome", "notified"),)] == 1
    assert findings[(("otel_sysops.alerts.outcome", "deduplicated"),)] == 1
    assert findings[(("otel_sysops.alerts.outcome", "silenced"),)] == 1
    active = points["otel_sysops.alerts.active"]
    assert active == {
        (("otel_sysops.alerts.severity", "info"),): 0,
        (("otel_sysops.alerts.severity", "warning"),): 1,
        (("otel_sysops.alerts.severity", "critical"),): 1,
        (("otel_sysops.alerts.severity", "emergency"),): 0,
    }
    messages = points["otel_sysops.alerts.messages"]
    assert messages[(("otel_sysops.alerts.channel", "log"), ("otel_sysops.alerts.outcome", "delivered"))] == 0
