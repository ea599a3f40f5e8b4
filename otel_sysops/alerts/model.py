"""What detectors, log patterns and hardware rules report, and what the alert manager routes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType


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
