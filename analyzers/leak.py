"""Leak: sustained growth of a process's resident memory or open descriptors, with a good linear fit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import NDArray
from opentelemetry.semconv._incubating.attributes.process_attributes import (
    PROCESS_EXECUTABLE_NAME,
    PROCESS_PID,
)

from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import LeakRule
from otel_sysops.store import AttrKey

from ._common import Transitions, fmt_duration, fmt_value, keys_of, matches
from .defaults import DEFAULT_LEAKS, merged
from .regression import Fit, fit_lines

F64 = NDArray[np.float64]


def leaking(
    fit: Fit,
    min_duration: float,
    min_r2: float,
    min_growth: float,
    min_increase: F64,
    firing: NDArray[np.bool_],
) -> NDArray[np.bool_]:
    """Return which series grow steadily: long enough, a good fit, and by enough (absolute and relative).

    A firing leak clears only when growth stops (slope <= 0) or the fit is clearly worse.
    """
    with np.errstate(invalid="ignore"):
        growth = fit.slope * fit.span
        start = fit.level - growth
        relative = np.where(start > 0, growth / np.where(start > 0, start, 1.0), np.inf)
        steady = (fit.span >= min_duration) & (fit.slope > 0)
        new = steady & (fit.r2 >= min_r2) & (growth >= min_increase) & (relative >= min_growth)
        held = firing & (fit.slope > 0) & (fit.r2 >= min_r2 - 0.2)
    return np.asarray(new | held)


def _process(attrs: Mapping[str, str]) -> str:
    pid = attrs.get(PROCESS_PID)
    name = attrs.get(PROCESS_EXECUTABLE_NAME)
    if pid and name:
        return f"process {name} (pid {pid})"
    if pid:
        return f"process {pid}"
    return "series"


class LeakAnalyzer(Analyzer):
    """Warn when a process's memory or descriptors grow steadily for at least `min_duration`."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self._last_fit = -np.inf
        self.cfg = ctx.settings.analyzers.leak
        self.rules = merged(DEFAULT_LEAKS, self.cfg.rules)
        self.transitions = Transitions("leak")
        self._plans: dict[str, tuple[list[AttrKey], list[LeakRule | None], NDArray[np.intp]]] = {}
        self._mins: dict[str, F64] = {}

    def _plan(
        self, metric: str, keys: list[AttrKey], attributes: list[dict[str, str]]
    ) -> tuple[list[LeakRule | None], NDArray[np.intp]]:
        """Return each series' rule and the rows under one; recomputed only when the series change."""
        cached = self._plans.get(metric)
        if cached is not None and cached[0] == keys:
            return cached[1], cached[2]
        rules = [r for r in self.rules if r.metric == metric]
        chosen: list[LeakRule | None] = []
        for attrs in attributes:
            fitting = [r for r in rules if matches(r.match, attrs)]
            chosen.append(max(fitting, key=lambda r: len(r.match)) if fitting else None)
        rows = np.asarray([i for i, r in enumerate(chosen) if r is not None], dtype=np.intp)
        self._plans[metric] = (keys, chosen, rows)
        self._mins[metric] = np.asarray([r.min_increase for r in chosen if r is not None], dtype=np.float64)
        return chosen, rows

    def analyze(self, now: float) -> Iterable[Finding]:
        if not self.cfg.enabled or now - self._last_fit < self.cfg.every:
            return []
        self._last_fit = now
        findings: list[Finding] = []
        for metric in sorted({r.metric for r in self.rules}):
            matrix = self.ctx.store.matrix(metric)
            keys = keys_of(matrix.attributes)
            findings.extend(self.transitions.vanished(metric, keys, now))
            chosen, rows = self._plan(metric, keys, matrix.attributes)
            if not rows.size or matrix.values.shape[1] < 2:
                continue
            values = matrix.values if rows.size == len(keys) else matrix.values[rows]
            fit = fit_lines(matrix.timestamps, values)
            mins = self._mins[metric]
            firing = np.zeros(rows.size, dtype=bool)
            if self.transitions.firing:
                firing = np.asarray([self.transitions.is_firing(metric, keys[i]) for i in rows], dtype=bool)
            leak = leaking(fit, self.cfg.min_duration, self.cfg.min_r2, self.cfg.min_growth, mins, firing)
            for j in np.nonzero(leak | firing)[0]:
                i = int(rows[j])
                rule = chosen[i]
                assert rule is not None
                attrs = matrix.attributes[i]
                value = float(fit.level[j])
                if leak[j]:
                    grew = float(fit.slope[j] * fit.span[j])
                    msg = (
                        f"{_process(attrs)}: {metric} grew {fmt_value(grew, rule.display)} "
                        f"in {fmt_duration(float(fit.span[j]))} "
                        f"({fmt_value(float(fit.slope[j]) * 3600, rule.display)}/h, R² {fit.r2[j]:.2f}), "
                        f"now {fmt_value(value, rule.display)}: a leak?"
                    )
                    found = self.transitions.update(metric, keys[i], Severity.WARNING, msg, value, None, now)
                elif self.transitions.is_firing(metric, keys[i]):
                    msg = (
                        f"{_process(attrs)}: {metric} stopped growing (now {fmt_value(value, rule.display)})"
                    )
                    found = self.transitions.update(metric, keys[i], None, msg, value, None, now)
                else:
                    found = None
                if found is not None:
                    findings.append(found)
        return findings
