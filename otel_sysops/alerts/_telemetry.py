"""The alert manager's own metrics (`otel_sysops.alerts.*`), registered on each pipeline's meter."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from ._manager import AlertManager
from .model import Severity

SCOPE = "otel_sysops.alerts"
# Attribute keys (no semantic convention exists for alerting; the agent's own names).
OUTCOME = "otel_sysops.alerts.outcome"
CHANNEL = "otel_sysops.alerts.channel"
SEVERITY = "otel_sysops.alerts.severity"


def register_alert_telemetry(meter: Meter, manager: AlertManager) -> None:
    """Create the instruments that show what the manager decided and what each channel delivered."""

    def findings(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(n, {OUTCOME: outcome}) for outcome, n in sorted(manager.counts_snapshot().items())
        ]

    def messages(_: CallbackOptions) -> Iterable[Observation]:
        out = []
        for runner in manager.runners:
            out.append(Observation(runner.stats.sent_messages, {CHANNEL: runner.name, OUTCOME: "delivered"}))
            out.append(Observation(runner.stats.failed_messages, {CHANNEL: runner.name, OUTCOME: "failed"}))
        return out

    def held_back(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(runner.stats.held_back, {CHANNEL: runner.name}) for runner in manager.runners]

    def breaker(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(int(runner.breaker.is_open), {CHANNEL: runner.name}) for runner in manager.runners
        ]

    def active(_: CallbackOptions) -> Iterable[Observation]:
        # Every severity, zeros included: "nothing firing" is a value, not an absent series.
        counts: dict[str, int] = {s.name.lower(): 0 for s in Severity}
        for alert in manager.active_alerts():
            key = alert.severity.name.lower()
            counts[key] = counts.get(key, 0) + 1
        return [Observation(n, {SEVERITY: severity}) for severity, n in sorted(counts.items())]

    meter.create_observable_counter(
        "otel_sysops.alerts.findings",
        [findings],
        "{finding}",
        "Findings by what the alert manager did with them (notified, deduplicated, silenced, inhibited, ...)",
    )
    meter.create_observable_counter(
        "otel_sysops.alerts.messages", [messages], "{message}", "Messages per channel, delivered or failed"
    )
    meter.create_observable_counter(
        "otel_sysops.alerts.held_back",
        [held_back],
        "{alert}",
        "Alerts per channel counted into a summary (rate limit, full queue, failed delivery)",
    )
    meter.create_observable_up_down_counter(
        "otel_sysops.alerts.circuit_open", [breaker], "1", "1 while a channel's circuit breaker is open"
    )
    meter.create_observable_up_down_counter(
        "otel_sysops.alerts.active", [active], "{alert}", "Alerts firing now, by severity"
    )
