"""The correlation analyzer: one host incident score per tick, one finding per incident.

It reads the per-series anomaly scores the anomaly analyzer published this tick and combines them
into `sysops.anomaly.host.score`, the mean of the three highest: a lone series that blips counts
for a third, series that move together count in full. When the host score reaches
`analyzers.correlation.alert_score` one finding opens, naming the series that moved together
(metric and attributes) in its message and attributes, instead of one alert per series; it
clears once the host score stayed below half of the threshold for `clear_after` seconds.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

import numpy as np
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext

from ._common import describe_series
from ._scores import HOST_TOP, board_for, host_score

HOST_METRIC = "sysops.anomaly.host.score"
RULE = "anomaly.host"
# Series named in an incident: the top contributors whose score is at least this share of the top.
NAMED = 5
NAMED_SHARE = 0.5


class CorrelationAnalyzer(Analyzer):
    """Host incident score from the co-moving series of one host; one finding per incident."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.analyzers.correlation
        self.board = board_for(ctx.store)
        self._lock = threading.Lock()
        self._score: float | None = None
        self.open_since: float | None = None
        self.last_high = -math.inf
        self.named: list[tuple[str, dict[str, str], float]] = []

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            HOST_METRIC,
            [self._observe],
            "1",
            f"Host incident score in [0, 1]: mean of the {HOST_TOP} highest series anomaly scores",
        )

    def _observe(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            score = self._score
        return [] if score is None else [Observation(score, {})]

    def analyze(self, now: float) -> Iterable[Finding]:
        if not self.cfg.enabled:
            return []
        latest = self.board.latest()
        if latest.timestamp != now and not math.isnan(latest.timestamp) and now - latest.timestamp > 0:
            # The anomaly analyzer did not run this tick (disabled or failed): no fresh scores.
            scores = np.zeros(0)
        else:
            scores = latest.scores
        score = host_score(scores)
        with self._lock:
            self._score = score
        if score >= self.cfg.alert_score:
            self.last_high = now
            if self.open_since is None:
                self.open_since = now
                self.named = self._contributors(latest.metrics, latest.attributes, scores)
                return [self._finding(Severity.WARNING, score, now, opened=True)]
            return []
        if score >= self.cfg.alert_score / 2:
            self.last_high = now
        if self.open_since is not None and now - self.last_high >= self.cfg.clear_after:
            self.open_since = None
            return [self._finding(None, score, now, opened=False)]
        return []

    def _contributors(
        self, metrics: list[str], attributes: list[dict[str, str]], scores: np.ndarray
    ) -> list[tuple[str, dict[str, str], float]]:
        order = np.argsort(-scores, kind="stable")[:NAMED]
        if order.size == 0:
            return []
        top = float(scores[order[0]])
        return [
            (metrics[i], attributes[i], float(scores[i]))
            for i in order
            if scores[i] > 0 and scores[i] >= NAMED_SHARE * top
        ]

    def _finding(self, severity: Severity | None, score: float, now: float, opened: bool) -> Finding:
        names = [describe_series(m, a) for m, a, _ in self.named]
        attrs = {f"sysops.series.{i + 1}": name for i, name in enumerate(names)}
        if opened:
            together = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
            verb = "moved together" if len(names) > 1 else "moved"
            message = f"host anomaly (score {score:.2f}): {together} {verb}"
        else:
            message = "host anomaly over: the series are back to their usual behaviour"
        return Finding(
            rule=RULE,
            metric=HOST_METRIC,
            attributes=attrs,
            severity=severity,
            message=message,
            value=score,
            threshold=self.cfg.alert_score,
            timestamp=now,
        )
