"""Trend: time to exhaustion of depletable resources, by linear regression over the raw window."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_DEVICE,
    SYSTEM_FILESYSTEM_MOUNTPOINT,
    SYSTEM_FILESYSTEM_STATE,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import TrendRule
from otel_sysops.store import AttrKey

from ._common import METRIC_ATTRIBUTE, Transitions, fmt_duration, fmt_value, keys_of, matches
from .defaults import DEFAULT_TRENDS, merged, subject
from .regression import Fit, fit_lines, time_to_reach

F64 = NDArray[np.float64]

FORECAST_METRIC = "sysops.forecast.time_to_exhaustion"
# A fired forecast clears only once the time to exhaustion exceeds warning x this (no flapping
# around 24 h), or the fit stops being good.
CLEAR_FACTOR = 1.5


def forecast_levels(
    eta: F64,
    r2: F64,
    span: F64,
    firing: NDArray[np.bool_],
    warning: float,
    critical: float,
    min_r2: float,
    min_span: float,
) -> NDArray[np.int64]:
    """Return 0/1/2 (none, warning, critical) per series from its time to exhaustion and fit quality."""
    with np.errstate(invalid="ignore"):
        good = np.isfinite(eta) & (r2 >= min_r2) & (span >= min_span)
        level = np.where(good & (eta < critical), 2, np.where(good & (eta < warning), 1, 0))
        # Hysteresis: a firing forecast stays at warning until clearly beyond the warning horizon.
        keep = (
            firing & (level == 0) & np.isfinite(eta) & (eta < warning * CLEAR_FACTOR) & (r2 >= min_r2 * 0.9)
        )
    return np.where(keep, 1, level).astype(np.int64)


def _subject(metric: str, attrs: Mapping[str, str]) -> str:
    mount = attrs.get(SYSTEM_FILESYSTEM_MOUNTPOINT)
    if metric == sm.SYSTEM_FILESYSTEM_UTILIZATION and mount:
        return mount
    if metric in (sm.SYSTEM_MEMORY_UTILIZATION, sm.SYSTEM_PAGING_UTILIZATION):
        return "memory" if metric == sm.SYSTEM_MEMORY_UTILIZATION else "swap"
    return subject(metric, attrs)


class TrendAnalyzer(Analyzer):
    """Forecast when filesystems, inodes, memory, swap and descriptors run out."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self._last_fit = -np.inf
        self.cfg = ctx.settings.analyzers.trend
        self.rules = merged(DEFAULT_TRENDS, self.cfg.rules)
        self.transitions = Transitions("trend")
        self._lock = threading.Lock()
        self._export: list[tuple[float, dict[str, str]]] = []
        self._plans: dict[str, tuple[list[AttrKey], NDArray[np.intp], F64]] = {}

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        churn.create_observable_gauge(
            FORECAST_METRIC, [self._observe], "s", "Forecast seconds until the resource is exhausted"
        )

    def _observe(self, _: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            export = list(self._export)
        for value, attrs in export:
            yield Observation(value, attrs)

    def analyze(self, now: float) -> Iterable[Finding]:
        if not self.cfg.enabled or now - self._last_fit < self.cfg.every:
            return []
        self._last_fit = now
        findings: list[Finding] = []
        export: list[tuple[float, dict[str, str]]] = []
        for metric in sorted({r.metric for r in self.rules}):
            matrix = self.ctx.store.matrix(metric)
            keys = keys_of(matrix.attributes)
            findings.extend(self.transitions.vanished(metric, keys, now))
            rows, limits = self._plan(metric, keys, matrix.attributes)
            if not rows.size or matrix.values.shape[1] < 2:
                continue
            values = matrix.values if rows.size == len(keys) else matrix.values[rows]
            fit = fit_lines(matrix.timestamps, values)
            eta = time_to_reach(fit, limits)
            firing = np.zeros(rows.size, dtype=bool)
            if self.transitions.firing:
                firing = np.asarray([self.transitions.is_firing(metric, keys[i]) for i in rows], dtype=bool)
            levels = forecast_levels(
                eta,
                fit.r2,
                fit.span,
                firing,
                self.cfg.warning,
                self.cfg.critical,
                self.cfg.min_r2,
                self.cfg.min_span,
            )
            with np.errstate(invalid="ignore"):
                good = np.isfinite(eta) & (fit.r2 >= self.cfg.min_r2) & (fit.span >= self.cfg.min_span)
            for j in np.nonzero(good | (levels > 0))[0]:
                attrs = matrix.attributes[rows[j]]
                export.append((float(eta[j]), {**attrs, METRIC_ATTRIBUTE: metric}))
            changed = np.nonzero((levels > 0) | firing)[0]
            sizes = self._limits(metric, matrix.attributes, [int(rows[j]) for j in changed])
            for j, size in zip(changed, sizes, strict=True):
                i = int(rows[j])
                found = self._finding(
                    metric,
                    keys[i],
                    matrix.attributes[i],
                    int(levels[j]),
                    fit,
                    int(j),
                    float(eta[j]),
                    size,
                    now,
                )
                if found is not None:
                    findings.append(found)
        with self._lock:
            self._export = export
        return findings

    def _plan(
        self, metric: str, keys: list[AttrKey], attributes: list[dict[str, str]]
    ) -> tuple[NDArray[np.intp], F64]:
        """Return the rows under a rule and their limits; recomputed only when the series change."""
        cached = self._plans.get(metric)
        if cached is not None and cached[0] == keys:
            return cached[1], cached[2]
        rules = [r for r in self.rules if r.metric == metric]
        chosen = [self._rule(rules, a) for a in attributes]
        rows = np.asarray([i for i, r in enumerate(chosen) if r is not None], dtype=np.intp)
        limits = np.asarray([r.limit for r in chosen if r is not None], dtype=np.float64)
        self._plans[metric] = (keys, rows, limits)
        return rows, limits

    @staticmethod
    def _rule(rules: list[TrendRule], attrs: Mapping[str, str]) -> TrendRule | None:
        best: TrendRule | None = None
        for rule in rules:
            if matches(rule.match, attrs) and (best is None or len(rule.match) >= len(best.match)):
                best = rule
        return best

    def _limits(self, metric: str, attributes: list[dict[str, str]], rows: list[int]) -> list[float]:
        """Return each filesystem's size in bytes (from system.filesystem.limit) to word rates in bytes."""
        if metric != sm.SYSTEM_FILESYSTEM_UTILIZATION:
            return [np.nan] * len(rows)
        limits = self.ctx.store.matrix(sm.SYSTEM_FILESYSTEM_LIMIT, 1)
        sizes: dict[tuple[str | None, str | None], float] = {}
        for attrs, value in zip(
            limits.attributes, limits.values[:, -1] if limits.values.size else [], strict=False
        ):
            sizes[(attrs.get(SYSTEM_DEVICE), attrs.get(SYSTEM_FILESYSTEM_MOUNTPOINT))] = float(value)
        out = []
        for i in rows:
            a = attributes[i]
            out.append(sizes.get((a.get(SYSTEM_DEVICE), a.get(SYSTEM_FILESYSTEM_MOUNTPOINT)), np.nan))
        return out

    def _finding(
        self,
        metric: str,
        key: AttrKey,
        attrs: dict[str, str],
        level: int,
        fit: Fit,
        j: int,
        eta: float,
        size: float,
        now: float,
    ) -> Finding | None:
        subject = _subject(metric, {k: v for k, v in attrs.items() if k != SYSTEM_FILESYSTEM_STATE})
        value = float(fit.level[j])
        if level == 0:
            if not self.transitions.is_firing(metric, key):
                return None
            msg = f"{subject} is no longer forecast to run out within {fmt_duration(self.cfg.warning)}"
            return self.transitions.update(metric, key, None, msg, value, None, now)
        per_hour = float(fit.slope[j]) * 3600.0
        rate = fmt_value(per_hour * size, "bytes") if np.isfinite(size) else fmt_value(per_hour, "percent")
        full = "full" if metric == sm.SYSTEM_FILESYSTEM_UTILIZATION else "exhausted"
        msg = (
            f"{subject} will be {full} in {fmt_duration(eta)} at {rate}/h, R² {fit.r2[j]:.2f} "
            f"(now {fmt_value(value, 'percent')})"
        )
        severity = Severity.CRITICAL if level == 2 else Severity.WARNING
        return self.transitions.update(metric, key, severity, msg, value, eta, now)
