"""Text shared by every channel: titles, one line per alert, the summary of what was held back."""

from __future__ import annotations

from datetime import UTC, datetime

from .channel import Alert, Notification
from .model import Severity

# How many alerts a message lists before "... and N more" (chat services cap message sizes).
MAX_LISTED = 20

# Discord embed colours (0xRRGGBB) by severity; resolved is green.
COLOURS = {
    Severity.INFO: 0x3498DB,
    Severity.WARNING: 0xF1C40F,
    Severity.CRITICAL: 0xE74C3C,
    Severity.EMERGENCY: 0x992D22,
}
RESOLVED_COLOUR = 0x2ECC71


def state_of(notification: Notification) -> str:
    """Return FIRING if any alert fires, RESOLVED if all are resolved, SUMMARY for none, TEST for tests."""
    if notification.test:
        return "TEST"
    if not notification.alerts:
        return "SUMMARY"
    return "FIRING" if any(a.state == "firing" for a in notification.alerts) else "RESOLVED"


def hosts_of(notification: Notification) -> str:
    """Return the host(s) a notification is about."""
    hosts = sorted({a.host for a in notification.alerts})
    return ", ".join(hosts) if hosts else "-"


def title(notification: Notification) -> str:
    """Return a one-line subject: state, severity, count and host."""
    state = state_of(notification)
    n = len(notification.alerts)
    if state == "SUMMARY":
        return f"[otel-sysops] {suppressed_count(notification)} alert(s) held back"
    severity = notification.severity.name.lower()
    what = notification.alerts[0].rule if n == 1 else f"{n} alerts"
    return f"[{state}] {severity}: {what} on {hosts_of(notification)}"


def when(ts: float) -> str:
    """Return an ISO 8601 UTC time."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_line(alert: Alert) -> str:
    """Return one line describing an alert."""
    attrs = ",".join(f"{k}={v}" for k, v in sorted(alert.attributes.items()))
    metric = f"{alert.metric}{{{attrs}}}" if attrs else alert.metric
    parts = [f"{alert.state.upper()} {alert.severity.name.lower()} {alert.rule} {metric}: {alert.message}"]
    if alert.value is not None:
        parts.append(f"value={alert.value:g}")
    if alert.threshold is not None:
        parts.append(f"threshold={alert.threshold:g}")
    parts.append(f"since {when(alert.starts_at)}")
    if alert.ends_at is not None:
        parts.append(f"until {when(alert.ends_at)}")
    return " ".join(parts)


def suppressed_count(notification: Notification) -> int:
    """Return how many alerts the notification reports as held back."""
    return sum(notification.suppressed.values())


def suppressed_line(notification: Notification) -> str:
    """Return the summary of held-back alerts ('' when none)."""
    if not notification.suppressed:
        return ""
    counts = ", ".join(f"{n} {sev}" for sev, n in sorted(notification.suppressed.items()))
    held = suppressed_count(notification)
    return f"{held} more alert(s) held back by the rate limit or failed delivery: {counts}"


def listed(notification: Notification) -> tuple[list[Alert], int]:
    """Return the alerts to list and how many more were left out."""
    alerts = list(notification.alerts)
    return alerts[:MAX_LISTED], max(0, len(alerts) - MAX_LISTED)


def text_body(notification: Notification) -> str:
    """Return the plain-text body: the list, what was left out, what was held back."""
    shown, more = listed(notification)
    lines = [title(notification), ""]
    lines += [f"- {alert_line(a)}" for a in shown]
    if more:
        lines.append(f"... and {more} more")
    summary = suppressed_line(notification)
    if summary:
        lines += ["", summary]
    return "\n".join(lines)
