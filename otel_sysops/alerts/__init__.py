"""Alerts: the finding model, the sink findings are handed to, the channel interface, the manager."""

from ._delivery import ChannelRunner, CircuitBreaker, DeliveryPolicy, TokenBucket
from ._errors import ChannelError
from ._manager import DEFAULT_DEDUP, AlertManager, ManagerPolicy
from ._observe import AlertChange, AlertObserver
from ._sink import AlertSink, LogAlertSink
from .channel import Alert, AlertState, Channel, Notification, SilenceControl
from .model import Finding, Severity, fingerprint

__all__ = [
    "DEFAULT_DEDUP",
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
    "fingerprint",
]
