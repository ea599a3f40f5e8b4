"""Threshold detector: warning and critical levels, comparison, hysteresis and a `for` duration."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import ThresholdRule
from otel_sysops.store import AttrKey

from ._common import SeriesIndex, Transitions, fmt_duration, fmt_value, matches
from .defaults import DEFAULT_THRESHOLDS, merged, subject

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

NONE, WARNING, CRITICAL = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ThresholdParams:
    """One rule's levels (NaN: level unused), comparison, hysteresis and hold time in seconds."""

    warning: float = math.nan
    critical: float = math.nan
    # ">" / ">=" fire above the level, "<" / "<=" below it.
    comparison: str = ">"
    # A firing level clears only once the value is past level - hysteresis (level + it for "<").
    hysteresis: float = 0.0
    # Seconds the condition must hold before the level fires.
    hold: float = 0.0


@dataclass(slots=True)
class ThresholdState:
    """Per-series arrays: the level reported, and since when each level's condition holds (NaN: not)."""

    level: I64
    since: F64  # [series, 2]: warning, critical

    @classmethod
    def empty(cls, n: int) -> ThresholdState:
        """Return the state of `n` series with nothing firing."""
        return cls(np.zeros(n, dtype=np.int64), np.full((n, 2), np.nan))

    def take(self, idx: NDArray[np.intp], fresh: NDArray[np.bool_]) -> ThresholdState:
        """Return the state re-ordered by `idx`, rows where `fresh` is true reset (new series)."""
        out = ThresholdState(self.level[idx], self.since[idx])
        out.level[fresh] = NONE
        out.since[fresh] = np.nan
        return out


@dataclass(frozen=True, slots=True)
class RuleArrays:
    """The constants of the rule each series is under, one entry per series."""

    warning: F64
    critical: F64
    above: NDArray[np.bool_]
    inclusive: NDArray[np.bool_]
    hysteresis: F64
    hold: F64

    @classmethod
    def of(cls, rules: list[ThresholdParams]) -> RuleArrays:
        """Return the arrays for `rules[i]` governing series i."""
        num = np.asarray(
            [(r.warning, r.critical, r.hysteresis, r.hold) for r in rules], dtype=np.float64
        ).reshape(-1, 4)
        return cls(
            num[:, 0].copy(),
            num[:, 1].copy(),
            np.asarray([r.comparison.startswith(">") for r in rules], dtype=bool),
            np.asarray([r.comparison.endswith("=") for r in rules], dtype=bool),
            num[:, 2].copy(),
            num[:, 3].copy(),
        )


def _beyond(x: F64, level: F64, rules: RuleArrays) -> NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        above = np.where(rules.inclusive, x >= level, x > level)
        below = np.where(rules.inclusive, x <= level, x < level)
    return np.asarray(np.where(rules.above, above, below) & np.isfinite(level))


def threshold_step(rules: RuleArrays, state: ThresholdState, x: F64, now: float) -> I64:
    """Fold this tick's values into `state`; return the level per series (0 none, 1 warning, 2 critical).

    A level's condition holds while the value is beyond it, or, once that level fires, while it is
    not yet back past level minus hysteresis; it fires after holding for `hold` seconds. A NaN
    sample changes nothing: a gap neither fires nor clears.
    """
    valid = np.isfinite(x)
    sign = np.where(rules.above, 1.0, -1.0)
    new_since = state.since.copy()
    for col, (level, rank) in enumerate(((rules.warning, WARNING), (rules.critical, CRITICAL))):
        relaxed = level - sign * rules.hysteresis
        holding = _beyond(x, level, rules) | ((state.level >= rank) & _beyond(x, relaxed, rules))
        started = np.where(np.isnan(state.since[:, col]), now, state.since[:, col])
        new_since[:, col] = np.where(valid, np.where(holding, started, np.nan), state.since[:, col])
    with np.errstate(invalid="ignore"):
        ripe = np.isfinite(new_since) & ((now - new_since) >= rules.hold[:, None])
    level_now = np.where(ripe[:, 1], CRITICAL, np.where(ripe[:, 0], WARNING, NONE))
    state.since = new_since
    state.level = np.where(valid, level_now, state.level).astype(np.int64)
    return state.level


_NO_SERIES: tuple[list[AttrKey], F64] = ([], np.zeros(0))


class ThresholdAnalyzer(Analyzer):
    """Static warning/critical levels per metric and attribute matcher (defaults + settings)."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        cfg = ctx.settings.analyzers
        self.rules = merged(DEFAULT_THRESHOLDS, cfg.thresholds, cfg.default_thresholds)
        self._display = {r.metric: r.display for r in DEFAULT_THRESHOLDS if r.display}
        self._metrics = sorted({r.metric for r in self.rules})
        self._watched = frozenset(self._metrics)
        self._index: dict[str, SeriesIndex] = {m: SeriesIndex() for m in self._metrics}
        self._state: dict[str, ThresholdState] = {m: ThresholdState.empty(0) for m in self._metrics}
        self._assigned: dict[str, tuple[list[ThresholdRule | None], RuleArrays]] = {}
        self.transitions = Transitions("threshold")

    def _assign(
        self, metric: str, attributes: list[dict[str, str]]
    ) -> tuple[list[ThresholdRule | None], RuleArrays]:
        """Pick for each series the most specific matching rule (later rules win ties)."""
        chosen: list[ThresholdRule | None] = []
        for attrs in attributes:
            best: ThresholdRule | None = None
            for rule in self.rules:
                if (
                    rule.metric == metric
                    and matches(rule.match, attrs)
                    and (best is None or len(rule.match) >= len(best.match))
                ):
                    best = rule
            chosen.append(best)
        params = [
            ThresholdParams(
                math.nan if r is None or r.warning is None else r.warning,
                math.nan if r is None or r.critical is None else r.critical,
                ">" if r is None else r.comparison,
                0.0 if r is None else r.hysteresis,
                0.0 if r is None else r.for_,
            )
            for r in chosen
        ]
        return chosen, RuleArrays.of(params)

    def analyze(self, now: float) -> Iterable[Finding]:
        findings: list[Finding] = []
        # Every rule metric's live series and latest values in one store call.
        latest = {name: (keys, x) for name, keys, x in self.ctx.store.latest(self._watched.__contains__)}
        for metric in self._metrics:
            keys, x = latest.get(metric, _NO_SERIES)
            moved = self._index[metric].align(keys)
            if moved is not None:
                idx, fresh = moved
                old = self._state[metric]
                self._state[metric] = (
                    ThresholdState.empty(len(keys)) if old.level.size == 0 else old.take(idx, fresh)
                )
                self._assigned[metric] = self._assign(metric, [dict(k) for k in keys])
            findings.extend(self.transitions.vanished(metric, keys, now))
            if not keys:
                continue
            chosen, arrays = self._assigned[metric]
            state = self._state[metric]
            before = state.level.copy()
            after = threshold_step(arrays, state, x, now)
            for i in np.nonzero(after != before)[0]:
                rule = chosen[i]
                if rule is None:
                    continue
                findings.extend(self._finding(metric, keys[i], rule, int(after[i]), float(x[i]), now))
        return findings

    def _finding(
        self, metric: str, key: AttrKey, rule: ThresholdRule, level: int, value: float, now: float
    ) -> list[Finding]:
        display = rule.display or self._display.get(metric, "number")
        what = subject(metric, dict(key))
        shown = fmt_value(value, display)
        if level == NONE:
            limit = rule.warning if rule.warning is not None else rule.critical
            msg = f"{what} back to {shown} (threshold {fmt_value(limit or 0.0, display)})"
            found = self.transitions.update(metric, key, None, msg, value, limit, now)
        else:
            severity = Severity.CRITICAL if level == CRITICAL else Severity.WARNING
            limit = rule.critical if level == CRITICAL else rule.warning
            side = "above" if rule.comparison.startswith(">") else "below"
            held = f" for {fmt_duration(rule.for_)}" if rule.for_ > 0 else ""
            msg = (
                f"{what} is {shown}, {side} the {severity.name.lower()} level "
                f"{fmt_value(limit or 0.0, display)}{held}"
            )
            found = self.transitions.update(metric, key, severity, msg, value, limit, now)
        return [] if found is None else [found]
