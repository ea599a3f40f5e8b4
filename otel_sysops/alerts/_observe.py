"""Observers of the alert manager: told of every alert change and every delivery outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .channel import Alert, Notification
from .model import Severity

ChangeKind = Literal["fired", "escalated", "resolved"]


@dataclass(frozen=True, slots=True)
class AlertChange:
    """One change of an alert's state: it fired, its severity changed, or it resolved."""

    kind: ChangeKind
    alert: Alert
    # The severity before an "escalated" change (up or down); None otherwise.
    previous: Severity | None = None


class AlertObserver(Protocol):
    """Something told about alert changes (history, live events); called on the submitter's thread.

    Both methods must return at once (queue the work): they run on the tick thread and on the
    channels' delivery tasks.
    """

    def alert_changed(self, change: AlertChange) -> None:
        """Take one change (every one, silenced and inhibited alerts included)."""

    def notification_sent(self, channel: str, notification: Notification, error: str | None) -> None:
        """Take the outcome of one message on one channel: None when delivered, else why not."""
