"""Turn matched lines into findings and counters: dedup, throttling, clearing, cross-source duplicates."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.semconv._incubating.attributes.log_attributes import LOG_RECORD_ORIGINAL

from otel_sysops.findings import AlertSink, Finding, Severity

from ._parse import sanitize, syslog_message
from ._patterns import Match, Matcher

_log = logging.getLogger(__name__)

RULE_PREFIX = "log."
METRIC = "sysops.log.matches"
ATTR_SOURCE = "sysops.log.source"

# A kernel line reaches us up to three times (kmsg, the journal, a syslog file): the same text
# matched from another source within this window is the same event.
DUPLICATE_WINDOW = 30.0
_MAX_RECENT = 4096
# Alerts tracked at once; past this the longest quiet one is resolved early and counted as
# `sysops.log.source.errors{error.type="firing_overflow"}` (keys that keep changing, e.g.
# segfaults of ever new programs, cannot grow the state without end).
MAX_FIRING = 10_000
# The shortest `resolve_after`: every log alert resolves eventually.
MIN_RESOLVE_AFTER = 1.0


@dataclass
class LogStats:
    """Counters exported as `sysops.log.*`; written by the sources, read by SDK callbacks."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # (source kind, file path or "") -> lines read
    lines: dict[tuple[str, str], int] = field(default_factory=dict)
    # pattern name -> matches (duplicates across sources counted once)
    matches: dict[str, int] = field(default_factory=dict)
    # (source kind, error kind) -> count
    errors: dict[tuple[str, str], int] = field(default_factory=dict)

    def add_lines(self, kind: str, path: str, n: int) -> None:
        """Count `n` lines read from a source."""
        if n:
            with self.lock:
                self.lines[(kind, path)] = self.lines.get((kind, path), 0) + n

    def add_error(self, kind: str, error: str, n: int = 1) -> None:
        """Count a source failure or a skipped record."""
        if n:
            with self.lock:
                self.errors[(kind, error)] = self.errors.get((kind, error), 0) + n

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[str, int], dict[tuple[str, str], int]]:
        """Return copies of (lines, matches, errors)."""
        with self.lock:
            return dict(self.lines), dict(self.matches), dict(self.errors)


@dataclass(slots=True)
class _Firing:
    finding: Finding
    count: int
    first: float
    last_seen: float
    last_submit: float


class LogAnalyzer:
    """Match lines, count them, and hand findings to the alert sink (thread-safe; sources call `feed`)."""

    def __init__(
        self,
        matcher: Matcher,
        alerts: AlertSink,
        stats: LogStats | None = None,
        *,
        resolve_after: float = 300.0,
        resubmit_after: float = 60.0,
        max_line: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        max_firing: int = MAX_FIRING,
    ) -> None:
        self.matcher = matcher
        self.alerts = alerts
        self.stats = stats or LogStats()
        self.resolve_after = max(MIN_RESOLVE_AFTER, resolve_after)
        self.resubmit_after = resubmit_after
        self.max_line = max_line
        self.max_firing = max_firing
        self._clock = clock
        self._lock = threading.Lock()
        self._firing: dict[str, _Firing] = {}
        self._recent: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        for pattern in matcher.patterns:
            self.stats.matches.setdefault(pattern.name, 0)

    def feed(
        self,
        kind: str,
        lines: Iterable[str],
        *,
        path: str = "",
        timestamp: float | None = None,
        syslog: bool = False,
    ) -> int:
        """Match each line from one source; return how many matched. `syslog`: lines carry a header."""
        match = self.matcher.match
        prepare = self._syslog_body if syslog else self._body
        n = matched = 0
        for line in lines:
            n += 1
            # The regexes run on the sanitised message, so captures (attributes) are clean too.
            hits = match(line, prepare)
            if hits:
                matched += self._handle(kind, path, prepare(line), hits, timestamp)
        self.stats.add_lines(kind, path, n)
        return matched

    def _body(self, line: str) -> str:
        return sanitize(line, self.max_line)

    def _syslog_body(self, line: str) -> str:
        return sanitize(syslog_message(line), self.max_line)

    def _handle(self, kind: str, path: str, line: str, hits: list[Match], timestamp: float | None) -> int:
        source = f"{kind}:{path}" if path else kind
        now = self._clock()
        out: list[Finding] = []
        matched = 0
        with self._lock:
            for hit in hits:
                if hit.severity is not None and self._duplicate(hit.pattern.name, line, source, now):
                    continue
                attrs = hit.attributes
                finding = Finding(
                    rule=RULE_PREFIX + hit.pattern.name,
                    metric=METRIC,
                    attributes=attrs,
                    severity=hit.severity,
                    message=sanitize(hit.message(line, source), self.max_line),
                    labels={ATTR_SOURCE: source, LOG_RECORD_ORIGINAL: line},
                    timestamp=timestamp if timestamp is not None else time.time(),
                    event=hit.pattern.event,
                )
                key = finding.fingerprint
                if hit.severity is None:
                    if self._firing.pop(key, None) is not None:
                        out.append(finding)
                    continue
                matched += 1
                with self.stats.lock:
                    self.stats.matches[hit.pattern.name] = self.stats.matches.get(hit.pattern.name, 0) + 1
                out.extend(self._fire(key, finding, hit.severity, now))
        for finding in out:
            self.alerts.submit(finding)
        return matched

    def _fire(self, key: str, finding: Finding, severity: Severity, now: float) -> list[Finding]:
        state = self._firing.get(key)
        if state is None:
            out: list[Finding] = []
            if len(self._firing) >= self.max_firing:
                oldest = min(self._firing, key=lambda k: self._firing[k].last_seen)
                # Resolved, not silently forgotten: the alert manager frees it too.
                quietest = self._firing.pop(oldest)
                out.append(self._cleared(quietest, "resolved early: too many log alerts firing"))
                self.stats.add_error("analyzer", "firing_overflow")
                _log.debug("more than %d log alerts firing: resolved the quietest", self.max_firing)
            self._firing[key] = _Firing(_counted(finding, 1), 1, now, now, now)
            out.append(self._firing[key].finding)
            return out
        state.count += 1
        state.last_seen = now
        # A new severity goes out at once; a repeat only every `resubmit_after` (the alert is firing).
        if severity != state.finding.severity or now - state.last_submit >= self.resubmit_after:
            state.finding = _counted(finding, state.count)
            state.last_submit = now
            return [state.finding]
        return []

    def _duplicate(self, pattern: str, line: str, source: str, now: float) -> bool:
        """Return whether another source reported the same line within DUPLICATE_WINDOW seconds."""
        key = (pattern, line)
        seen = self._recent.get(key)
        if seen is not None and seen[0] != source and now - seen[1] <= DUPLICATE_WINDOW:
            return True
        self._recent[key] = (source, now)
        self._recent.move_to_end(key)
        while len(self._recent) > _MAX_RECENT:
            self._recent.popitem(last=False)
        return False

    def expire(self) -> int:
        """Send a cleared finding for each event quiet for `resolve_after` seconds; return how many."""
        now = self._clock()
        cleared: list[Finding] = []
        with self._lock:
            for key, state in list(self._firing.items()):
                if state.finding.event and now - state.last_seen >= self.resolve_after:
                    del self._firing[key]
                    cleared.append(self._cleared(state, f"no new match for {self.resolve_after:g} s"))
        for finding in cleared:
            self.alerts.submit(finding)
        return len(cleared)

    @staticmethod
    def _cleared(state: _Firing, why: str) -> Finding:
        f = state.finding
        return Finding(
            f.rule,
            f.metric,
            f.attributes,
            None,
            f"{why} ({state.count} in all)",
            float(state.count),
            labels=f.labels,
            event=True,
        )

    def firing(self) -> dict[str, Finding]:
        """Return the latest finding of each fingerprint firing now."""
        with self._lock:
            return {k: s.finding for k, s in self._firing.items()}


def _counted(finding: Finding, count: int) -> Finding:
    """Return the finding with `value` = the matches of its fingerprint since it began firing."""
    return Finding(
        finding.rule,
        finding.metric,
        finding.attributes,
        finding.severity,
        finding.message,
        float(count),
        finding.threshold,
        finding.labels,
        finding.timestamp,
        finding.event,
    )
