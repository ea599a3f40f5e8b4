"""The anomaly analyzer: the ensemble score of every watched series each tick, exported and alerted on."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.alerts import Finding, Severity
from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.store import AttrKey

from ._common import (
    METRIC_ATTRIBUTE,
    SeriesIndex,
    Transitions,
    describe_series,
    fmt_value,
    keys_of,
    name_matches,
)
from .ensemble import EnsembleParams, EnsembleState, ensemble_step

F64 = NDArray[np.float64]


SCORE_METRIC = "sysops.anomaly.score"


@dataclass(slots=True)
class _Tracked:
    index: SeriesIndex
    state: EnsembleState
    keys: list[AttrKey]
    attributes: list[dict[str, str]]
    scores: F64
    last_high: F64
    values: F64


class AnomalyAnalyzer(Analyzer):
    """The ensemble score of every watched series, every tick; INFO findings on high scores."""

    # Seconds without a high score before a fired anomaly finding clears.
    CLEAR_AFTER = 300.0

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.analyzers.anomaly
        self.params = replace(EnsembleParams(), seasonal=self.cfg.seasonal).scaled(ctx.settings.interval)
        self._tracked: dict[str, _Tracked] = {}
        self._lock = threading.Lock()
        self._export: list[tuple[str, list[dict[str, str]], F64]] = []
        self.transitions = Transitions("anomaly")

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        churn.create_observable_gauge(
            SCORE_METRIC,
            [self._observe],
            "1",
            "Ensemble anomaly score of a series in [0, 1] (1: most unusual)",
        )

    def _observe(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            export = list(self._export)
        for metric, attributes, scores in export:
            for attrs, score in zip(attributes, scores.tolist(), strict=True):
                yield Observation(score, {**attrs, METRIC_ATTRIBUTE: metric})

    def _watched(self) -> list[str]:
        return [
            m
            for m in self.ctx.store.metrics()
            if name_matches(m, self.cfg.metrics) and not name_matches(m, self.cfg.exclude)
        ]

    def analyze(self, now: float) -> Iterable[Finding]:
        if not self.cfg.enabled:
            return []
        findings: list[Finding] = []
        export: list[tuple[str, list[dict[str, str]], F64]] = []
        hour_now = int(now // 3600) % 24
        watched = self._watched()
        for metric in [m for m in self._tracked if m not in watched]:
            findings.extend(self.transitions.vanished(metric, [], now))
            del self._tracked[metric]
        for metric in watched:
            tracked = self._step(metric, hour_now)
            if tracked is not None:
                export.append((metric, tracked.attributes, tracked.scores))
                findings.extend(self._findings(metric, tracked, now))
        with self._lock:
            self._export = export
        return findings

    def _step(self, metric: str, hour_now: int) -> _Tracked | None:
        """Fold the latest sample of every series of `metric` into its state; None when it has none."""
        matrix = self.ctx.store.matrix(metric, 1)
        if matrix.values.shape[1] == 0:
            return None
        keys = keys_of(matrix.attributes)
        tracked = self._tracked.get(metric)
        if tracked is None:
            tracked = self._tracked[metric] = _Tracked(
                SeriesIndex(),
                EnsembleState.empty(0, self.params),
                [],
                [],
                np.zeros(0),
                np.zeros(0),
                np.zeros(0),
            )
        moved = tracked.index.align(keys)
        if moved is not None:
            idx, fresh = moved
            if tracked.state.seen.size == 0:
                tracked.state = EnsembleState.empty(len(keys), self.params)
                tracked.last_high = np.full(len(keys), -np.inf)
            else:
                tracked.state = tracked.state.take(idx, fresh)
                tracked.last_high = np.where(fresh, -np.inf, tracked.last_high[idx])
            tracked.keys, tracked.attributes = keys, matrix.attributes
        tracked.values = matrix.values[:, -1]
        hours = np.full(len(keys), hour_now, dtype=np.int64)
        tracked.scores = ensemble_step(self.params, tracked.state, tracked.values, hours)
        return tracked

    def _findings(self, metric: str, tracked: _Tracked, now: float) -> list[Finding]:
        """Fire on scores at or above `alert_score`; clear after CLEAR_AFTER seconds without one."""
        findings = list(self.transitions.vanished(metric, tracked.keys, now))
        x, scores, keys = tracked.values, tracked.scores, tracked.keys
        high = scores >= self.cfg.alert_score
        tracked.last_high = np.where(high, now, tracked.last_high)
        for i in np.nonzero(high)[0]:
            what = describe_series(metric, tracked.attributes[i])
            msg = (
                f"{what} = {fmt_value(float(x[i]), 'number')} is unusual "
                f"(anomaly score {scores[i]:.2f}): it left the range it held for hours or stopped moving"
            )
            found = self.transitions.update(metric, keys[i], Severity.INFO, msg, float(x[i]), None, now)
            if found is not None:
                findings.append(found)
        for metric_key in [k for m, k in self.transitions.firing if m == metric]:
            row = keys.index(metric_key)
            if now - tracked.last_high[row] >= self.CLEAR_AFTER:
                msg = f"{describe_series(metric, dict(metric_key))}: back to usual"
                found = self.transitions.update(metric, metric_key, None, msg, float(x[row]), None, now)
                if found is not None:
                    findings.append(found)
        return findings
