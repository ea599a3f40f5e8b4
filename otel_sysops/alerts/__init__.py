"""Alerts: the finding model, the sink findings are handed to, the channel interface, the manager."""

from ._build import build_alert_sink, build_manager, reconfigure
from ._delivery import ChannelRunner, CircuitBreaker, DeliveryPolicy, TokenBucket, summary_alert
from ._errors import ChannelError
from ._manager import DEFAULT_DEDUP, AlertManager, ManagerPolicy
from ._observe import AlertChange, AlertObserver
from ._sink import AlertSink, LogAlertSink
from ._telemetry import SCOPE as TELEMETRY_SCOPE
from ._telemetry import register_alert_telemetry
from .channel import Alert, AlertState, Channel, Notification, SilenceControl
from .model import Finding, Severity, fingerprint

__all__ = [
    "DEFAULT_DEDUP",
    "TELEMETRY_SCOPE",
    "Alert",
    "AlertChange",
    "AlertManager",
    "AlertObserver",
    "AlertSink",
    "AlertState",
    "Channel",
    "ChannelError",
    "ChannelRunner",
    "CircuitBreaker",
    "DeliveryPolicy",
    "Finding",
    "LogAlertSink",
    "ManagerPolicy",
    "Notification",
    "Severity",
    "SilenceControl",
    "TokenBucket",
    "build_alert_sink",
    "build_manager",
    "fingerprint",
    "reconfigure",
    "register_alert_telemetry",
    "summary_alert",
]
