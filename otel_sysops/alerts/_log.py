"""The log channel: one line per alert, at a level that follows the severity."""

from __future__ import annotations

import logging

from ._format import alert_line, suppressed_line
from .channel import Notification
from .model import Severity

_log = logging.getLogger("otel_sysops.alerts")


class LogChannel:
    """Write each alert of a notification to the agent's log."""

    rate_limited = False  # a machine channel: never rate-limited into loss

    def __init__(self, name: str = "log", min_severity: Severity = Severity.INFO) -> None:
        self.name = name
        self.min_severity = min_severity

    async def send(self, notification: Notification) -> None:
        for alert in notification.alerts:
            if alert.state == "resolved" or notification.test:
                level = logging.INFO
            elif alert.severity <= Severity.WARNING:
                level = logging.WARNING
            else:
                level = logging.ERROR
            _log.log(level, "%s%s", "TEST " if notification.test else "", alert_line(alert))
        summary = suppressed_line(notification)
        if summary:
            _log.warning("%s", summary)

    async def aclose(self) -> None:
        return None
