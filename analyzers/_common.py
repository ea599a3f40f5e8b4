"""What every analyzer shares: series identity across ticks, matchers, findings on change, wording."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from fnmatch import fnmatchcase

import numpy as np
from numpy.typing import NDArray

from otel_sysops.findings import Finding, Severity
from otel_sysops.store import AttrKey

F64 = NDArray[np.float64]

# The attribute naming which metric an exported score or forecast is about.
METRIC_ATTRIBUTE = "sysops.metric"


def keys_of(attributes: list[dict[str, str]]) -> list[AttrKey]:
    """Return the identity of each series (the store hands attribute dicts in key order)."""
    return [tuple(a.items()) for a in attributes]


class SeriesIndex:
    """Map this tick's series onto last tick's state rows."""

    def __init__(self) -> None:
        self.keys: list[AttrKey] = []

    def align(self, keys: list[AttrKey]) -> tuple[NDArray[np.intp], NDArray[np.bool_]] | None:
        """Return (row of each series in the old state, which are new), or None when nothing changed."""
        if keys == self.keys:
            return None
        pos = {k: i for i, k in enumerate(self.keys)}
        idx = np.fromiter((pos.get(k, -1) for k in keys), dtype=np.intp, count=len(keys))
        fresh = idx < 0
        idx[fresh] = 0
        self.keys = list(keys)
        return idx, fresh


def matches(match: Mapping[str, str], attributes: Mapping[str, str]) -> bool:
    """Return whether every matcher entry is present with a matching value (shell wildcards)."""
    for key, pattern in match.items():
        value = attributes.get(key)
        if value is None or not fnmatchcase(value, pattern):
            return False
    return True


def name_matches(name: str, patterns: Iterable[str]) -> bool:
    """Return whether a metric name matches one of the wildcard patterns."""
    return any(fnmatchcase(name, p) for p in patterns)


def describe_series(metric: str, attributes: Mapping[str, str]) -> str:
    """Name a series the way people say it: `metric{k=v, ...}`."""
    if not attributes:
        return metric
    return f"{metric}{{{', '.join(f'{k}={v}' for k, v in sorted(attributes.items()))}}}"


def fmt_duration(seconds: float) -> str:
    """Return '3 h 20 min', '45 s', '2 d 4 h'."""
    if not math.isfinite(seconds):
        return "never"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes, _ = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def fmt_value(value: float, display: str) -> str:
    """Return a value as people read it: '93 %', '120 ms', '86 °C', '1.2 GB', '42'."""
    if not math.isfinite(value):
        return str(value)
    if display == "percent":
        return f"{value * 100:.0f} %" if abs(value) >= 0.1 else f"{value * 100:.1f} %"
    if display == "seconds":
        return f"{value * 1000:.0f} ms" if abs(value) < 10 else fmt_duration(value)
    if display == "celsius":
        return f"{value:.0f} °C"
    if display == "bytes":
        size = abs(value)
        unit = 0
        while size >= 1000 and unit < len(_BYTE_UNITS) - 1:
            size /= 1000
            unit += 1
        sign = "-" if value < 0 else ""
        return f"{sign}{size:.1f} {_BYTE_UNITS[unit]}" if unit else f"{sign}{size:.0f} B"
    return f"{value:.3g}" if abs(value) < 1e6 else f"{value:.3e}"


class Transitions:
    """Remember what fires per series and turn changes into findings (cleared ones included)."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.firing: dict[tuple[str, AttrKey], Severity] = {}

    def update(
        self,
        metric: str,
        key: AttrKey,
        severity: Severity | None,
        message: str,
        value: float | None,
        threshold: float | None,
        now: float,
    ) -> Finding | None:
        """Return a finding when the series' severity changed (None when it did not)."""
        ident = (metric, key)
        before = self.firing.get(ident)
        if severity == before:
            return None
        if severity is None:
            del self.firing[ident]
        else:
            self.firing[ident] = severity
        return Finding(
            rule=self.rule,
            metric=metric,
            attributes=dict(key),
            severity=severity,
            message=message,
            value=None if value is None or not math.isfinite(value) else float(value),
            threshold=None if threshold is None or not math.isfinite(threshold) else float(threshold),
            timestamp=now,
        )

    def vanished(self, metric: str, live: Iterable[AttrKey], now: float) -> Iterator[Finding]:
        """Clear whatever fired for series of `metric` that are no longer in the store."""
        alive = set(live)
        for ident in [i for i in self.firing if i[0] == metric and i[1] not in alive]:
            del self.firing[ident]
            yield Finding(
                rule=self.rule,
                metric=metric,
                attributes=dict(ident[1]),
                severity=None,
                message=f"{describe_series(metric, dict(ident[1]))}: series no longer reported",
                timestamp=now,
            )

    def is_firing(self, metric: str, key: AttrKey) -> bool:
        """Return whether the series currently fires."""
        return (metric, key) in self.firing
