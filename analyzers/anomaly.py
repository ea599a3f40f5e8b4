"""The anomaly analyzer: the ensemble score of every watched series, in one batched step per tick.

Every watched series of every metric is one row of a single state; each tick gathers the latest
sample of all of them into one vector and steps the ensemble once (no per-metric numpy work).
The default exposition is sized for a fleet: one score per metric family (the maximum over its
series), the number of anomalous series, and the few highest series with their attributes;
per-series scores only for the metrics listed in `analyzers.anomaly.export_series`. The
per-series scores stay available in-process (`analyzers._scores`) for the correlation analyzer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.store import AttrKey

from ._common import METRIC_ATTRIBUTE, SeriesIndex, Transitions, describe_series, fmt_value, name_matches
from ._scores import Scores, board_for
from .ensemble import EnsembleParams, EnsembleState, ensemble_step

F64 = NDArray[np.float64]

SCORE_METRIC = "sysops.anomaly.score"
SERIES_SCORE_METRIC = "sysops.anomaly.series.score"
TOP_METRIC = "sysops.anomaly.top_series"
COUNT_METRIC = "sysops.anomaly.anomalous_series"
# Highest-scoring series exported with their attributes (a small, bounded label set).
TOP_SERIES = 5

_Export = tuple[
    list[tuple[str, float]],
    list[tuple[float, dict[str, str]]],
    int,
    list[tuple[float, dict[str, str]]],
]


# A metric's series keys, and per series its metric name, attributes and identity.
_Gathered = tuple[list[AttrKey], list[str], list[dict[str, str]], list[tuple[str, AttrKey]]]


class AnomalyAnalyzer(Analyzer):
    """The ensemble score of every watched series, every tick; INFO findings on high scores."""

    # Seconds without a high score before a fired anomaly finding clears.
    CLEAR_AFTER = 300.0

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.analyzers.anomaly
        self.params = replace(EnsembleParams(), seasonal=self.cfg.seasonal).scaled(ctx.settings.interval)
        self.index = SeriesIndex()
        self.state = EnsembleState.empty(0, self.params)
        self.last_high = np.zeros(0)
        self.board = board_for(ctx.store)
        self._lock = threading.Lock()
        self._export: _Export = ([], [], 0, [])
        self.transitions = Transitions("anomaly")
        self._watch_cache: dict[str, bool] = {}  # metric name -> matched by metrics, not exclude
        # Per watched metric, its series at the last gather() and the lists built from them.
        self._gathered: dict[str, _Gathered] = {}

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        churn.create_observable_gauge(
            SCORE_METRIC,
            [self._observe_families],
            "1",
            "Highest ensemble anomaly score in [0, 1] over the series of a metric (1: most unusual)",
        )
        churn.create_observable_gauge(
            COUNT_METRIC,
            [self._observe_count],
            "{series}",
            "Series whose anomaly score is at or above analyzers.anomaly.alert_score",
        )
        churn.create_observable_gauge(
            TOP_METRIC,
            [self._observe_top],
            "1",
            f"Anomaly score of the {TOP_SERIES} highest-scoring series, with their attributes",
        )
        churn.create_observable_gauge(
            SERIES_SCORE_METRIC,
            [self._observe_series],
            "1",
            "Anomaly score of each series of the metrics in analyzers.anomaly.export_series",
        )

    def _observe_families(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            families = self._export[0]
        return [Observation(score, {METRIC_ATTRIBUTE: metric}) for metric, score in families]

    def _observe_top(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            top = self._export[1]
        return [Observation(score, attrs) for score, attrs in top]

    def _observe_count(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            count = self._export[2]
        return [Observation(count, {})]

    def _observe_series(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            series = self._export[3]
        return [Observation(score, attrs) for score, attrs in series]

    def _is_watched(self, metric: str) -> bool:
        watched = self._watch_cache.get(metric)
        if watched is None:
            watched = name_matches(metric, self.cfg.metrics) and not name_matches(metric, self.cfg.exclude)
            if len(self._watch_cache) < 100_000:
                self._watch_cache[metric] = watched
        return watched

    def gather(self) -> tuple[list[str], list[dict[str, str]], list[tuple[str, AttrKey]], F64]:
        """Return metric, attributes, identity and latest value of every watched series.

        Each metric's per-series lists are rebuilt only when its series change (not per tick);
        callers must not mutate the attribute dicts."""
        latest = self.ctx.store.latest(self._is_watched)
        cache = self._gathered
        fresh: dict[str, _Gathered] = {}
        metrics: list[str] = []
        attributes: list[dict[str, str]] = []
        keys: list[tuple[str, AttrKey]] = []
        for metric, series, _ in latest:
            entry = cache.get(metric)
            if entry is None or entry[0] != series:
                attrs = [dict(k) for k in series]
                entry = (series, [metric] * len(series), attrs, [(metric, k) for k in series])
            fresh[metric] = entry
            metrics += entry[1]
            attributes += entry[2]
            keys += entry[3]
        self._gathered = fresh
        values = np.concatenate([v for _, _, v in latest]) if latest else np.zeros(0)
        return metrics, attributes, keys, values

    def step(self, keys: list[tuple[str, AttrKey]], values: F64, now: float) -> F64:
        """Fold one sample per series (identified by `keys`) into the state; return the scores."""
        moved = self.index.align(keys)  # type: ignore[arg-type]
        if moved is not None:
            idx, fresh = moved
            if self.state.seen.size == 0:
                self.state = EnsembleState.empty(len(keys), self.params)
                self.last_high = np.full(len(keys), -np.inf)
            else:
                self.state = self.state.take(idx, fresh)
                self.last_high = np.where(fresh, -np.inf, self.last_high[idx])
        hours = np.full(len(keys), int(now // 3600) % 24, dtype=np.int64)
        return ensemble_step(self.params, self.state, values, hours)

    def analyze(self, now: float) -> Iterable[Finding]:
        if not self.cfg.enabled:
            return []
        metrics, attributes, keys, values = self.gather()
        scores = self.step(keys, values, now) if keys else np.zeros(0)
        self.board.publish(Scores(now, metrics, attributes, values, scores))
        export = self._exports(metrics, attributes, scores)
        with self._lock:
            self._export = export
        return self._findings(metrics, attributes, keys, values, scores, now)

    def _exports(self, metrics: list[str], attributes: list[dict[str, str]], scores: F64) -> _Export:
        """Per family the maximum, the count above alert_score, the top series, the listed series."""
        if not metrics:
            return ([], [], 0, [])
        names, first = np.unique(np.asarray(metrics, dtype=object), return_index=True)
        order = np.argsort(first)
        starts = np.sort(first)
        families = np.maximum.reduceat(scores, starts)
        fam = [(str(names[order[i]]), float(families[i])) for i in range(starts.size)]
        count = int(np.count_nonzero(scores >= self.cfg.alert_score))
        top = [
            (float(scores[i]), {**attributes[i], METRIC_ATTRIBUTE: metrics[i]})
            for i in np.argsort(-scores, kind="stable")[:TOP_SERIES]
            if scores[i] > 0
        ]
        listed: list[tuple[float, dict[str, str]]] = []
        if self.cfg.export_series:
            chosen = {m for m in set(metrics) if name_matches(m, self.cfg.export_series)}
            for i, metric in enumerate(metrics):
                if metric in chosen:
                    listed.append((float(scores[i]), {**attributes[i], METRIC_ATTRIBUTE: metric}))
        return (fam, top, count, listed)

    def _findings(
        self,
        metrics: list[str],
        attributes: list[dict[str, str]],
        keys: list[tuple[str, AttrKey]],
        x: F64,
        scores: F64,
        now: float,
    ) -> list[Finding]:
        """Fire on scores at or above `alert_score`; clear after CLEAR_AFTER seconds without one."""
        findings: list[Finding] = []
        live = set(keys)
        for metric in sorted({m for m, k in self.transitions.firing if (m, k) not in live}):
            findings.extend(self.transitions.vanished(metric, [k for m, k in live if m == metric], now))
        high = scores >= self.cfg.alert_score
        if self.last_high.size == scores.size:
            self.last_high = np.where(high, now, self.last_high)
        for i in np.nonzero(high)[0]:
            what = describe_series(metrics[i], attributes[i])
            msg = (
                f"{what} = {fmt_value(float(x[i]), 'number')} is unusual "
                f"(anomaly score {scores[i]:.2f}): it left its range, moved far from its usual level "
                "or stopped"
            )
            found = self.transitions.update(
                metrics[i], keys[i][1], Severity.INFO, msg, float(x[i]), None, now
            )
            if found is not None:
                findings.append(found)
        if self.transitions.firing:
            row_of = {k: i for i, k in enumerate(keys)}
            for ident in list(self.transitions.firing):
                row = row_of.get(ident)
                if row is None or now - self.last_high[row] < self.CLEAR_AFTER:
                    continue
                msg = f"{describe_series(ident[0], dict(ident[1]))}: back to usual"
                found = self.transitions.update(ident[0], ident[1], None, msg, float(x[row]), None, now)
                if found is not None:
                    findings.append(found)
        return findings
