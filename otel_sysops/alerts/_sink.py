"""The interface between producers of findings and whatever routes them."""

from __future__ import annotations

import logging
import threading
from typing import Protocol, runtime_checkable

from .model import Finding, Severity

_log = logging.getLogger("otel_sysops.alerts")


@runtime_checkable
class AlertSink(Protocol):
    """Accept findings from any thread without blocking the caller."""

    def submit(self, finding: Finding) -> None:
        """Take one finding; must return at once (no network I/O on the caller's thread)."""


class LogAlertSink:
    """Log each firing and each resolution once (state changes only)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, Severity] = {}

    def submit(self, finding: Finding) -> None:
        key = finding.fingerprint
        with self._lock:
            previous = self._active.get(key)
            if finding.severity is None:
                if previous is None:
                    return
                del self._active[key]
            elif previous == finding.severity:
                return
            else:
                self._active[key] = finding.severity
        if finding.severity is None:
            _log.info("RESOLVED %s %s: %s", finding.rule, finding.metric, finding.message)
        else:
            level = logging.WARNING if finding.severity <= Severity.WARNING else logging.ERROR
            _log.log(
                level,
                "FIRING %s %s %s: %s",
                finding.severity.name,
                finding.rule,
                finding.metric,
                finding.message,
            )

    def active(self) -> dict[str, Severity]:
        """Return the fingerprints firing now, with their severity."""
        with self._lock:
            return dict(self._active)
