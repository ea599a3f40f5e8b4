"""What the alert manager hands to notification channels, and the channel interface."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .model import Severity

AlertState = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert as a person sees it: identity, severity, state, times, value and message."""

    id: str
    fingerprint: str
    rule: str
    metric: str
    attributes: Mapping[str, str]
    severity: Severity
    state: AlertState
    starts_at: float
    message: str
    host: str
    ends_at: float | None = None
    value: float | None = None
    threshold: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by webhooks, NATS and the log."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "metric": self.metric,
            "attributes": dict(self.attributes),
            "severity": self.severity.name.lower(),
            "state": self.state,
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
            "host": self.host,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to send: one or more alerts (a group), plus what rate limiting held back."""

    alerts: Sequence[Alert]
    # Alerts the channel's rate limit held back since its last message, by severity name.
    suppressed: Mapping[str, int] = field(default_factory=dict)
    test: bool = False

    @property
    def severity(self) -> Severity:
        """Return the highest severity in the notification."""
        return max((a.severity for a in self.alerts), default=Severity.INFO)


class Channel(Protocol):
    """A destination for notifications (Discord, Slack, Telegram, email, webhook, syslog, log, NATS)."""

    name: str
    min_severity: Severity
    # Optional attribute `rate_limited: bool` (default True): False for a machine (NATS, webhook,
    # syslog, log), which gets every alert; the token bucket and summaries are for chat channels.

    async def send(self, notification: Notification) -> None:
        """Deliver one notification; raise `otel_sysops.alerts.ChannelError` on failure."""

    async def aclose(self) -> None:
        """Release connections."""


class SilenceControl(Protocol):
    """Run-time silences and the active alerts: what the alert manager offers the control plane."""

    def add_silence(
        self, matchers: Mapping[str, str], duration: float, comment: str = "", created_by: str = ""
    ) -> str:
        """Silence alerts whose fields/labels match every matcher for `duration` seconds; return its id."""

    def remove_silence(self, silence_id: str) -> bool:
        """Remove a silence; return whether it existed."""

    def silences(self) -> list[dict[str, Any]]:
        """Return the active silences as JSON-able dicts (id, matchers, ends_at, comment, created_by)."""

    def active_alerts(self) -> list[Alert]:
        """Return the alerts firing now."""
