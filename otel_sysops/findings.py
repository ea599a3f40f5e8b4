"""The ground floor every package may import: what detectors, log patterns and hardware rules report
(`Finding`, `Severity`) and where they hand it (`AlertSink`). Imports nothing of otel_sysops."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Protocol, runtime_checkable


class Severity(IntEnum):
    """How urgent a finding is; ordered so `>=` compares urgency."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2
    EMERGENCY = 3

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Return the severity named by `text` (case-insensitive); raise ValueError otherwise."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            accepted = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}; accepted: {accepted}") from None


def fingerprint(rule: str, metric: str, attributes: Mapping[str, str]) -> str:
    """Return a stable identity for rule + metric + attributes (the dedup key)."""
    digest = hashlib.sha256()
    for part in (rule, metric, *(f"{k}={attributes[k]}" for k in sorted(attributes))):
        digest.update(part.encode("utf-8", "replace"))
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Finding:
    """One observation by a rule about one series: firing at a severity, or cleared (severity None)."""

    rule: str
    metric: str
    attributes: Mapping[str, str]
    severity: Severity | None
    message: str
    value: float | None = None
    # The level crossed (thresholds) or the expected value (baselines, forecasts).
    threshold: float | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    # Seconds since the epoch; None means "when the manager receives it".
    timestamp: float | None = None
    # A one-off occurrence (a log line) rather than a condition that holds: it has no natural end,
    # so its producer sends the cleared finding after a quiet period (e.g. `logs.resolve_after`).
    event: bool = False

    @property
    def firing(self) -> bool:
        """Return whether the finding reports a problem (as opposed to its clearing)."""
        return self.severity is not None

    @property
    def fingerprint(self) -> str:
        """Return the identity shared by every finding about the same rule, metric and attributes."""
        return fingerprint(self.rule, self.metric, self.attributes)


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
