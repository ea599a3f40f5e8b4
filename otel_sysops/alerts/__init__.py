"""Alerts: the finding model, the sink findings are handed to, and the channel interface."""

from otel_sysops.errors import SysopsError

from ._sink import AlertSink, LogAlertSink
from .channel import Alert, AlertState, Channel, Notification, SilenceControl
from .model import Finding, Severity, fingerprint


class ChannelError(SysopsError):
    """A channel failed to deliver; the message never contains secrets (URLs are masked)."""


__all__ = [
    "Alert",
    "AlertSink",
    "AlertState",
    "Channel",
    "ChannelError",
    "Finding",
    "LogAlertSink",
    "Notification",
    "Severity",
    "SilenceControl",
    "fingerprint",
]
