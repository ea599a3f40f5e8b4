"""EWMA deviation bands: exponentially weighted mean and variance, streaming."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext

from ._common import SeriesIndex, Transitions, describe_series, fmt_value, keys_of, name_matches

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EwmaParams:
    """Smoothing factor of mean and variance, band width in deviations, samples before a band exists."""

    alpha: float = 0.02
    width: float = 4.0
    warmup: int = 30


@dataclass(slots=True)
class EwmaState:
    """Per-series mean, variance and count (arrays owned by the caller)."""

    mean: F64
    var: F64
    count: F64

    @classmethod
    def empty(cls, n: int) -> EwmaState:
        """Return the state of `n` series that have seen nothing."""
        return cls(np.full(n, np.nan), np.zeros(n), np.zeros(n))

    def take(self, idx: NDArray[np.intp], fresh: NDArray[np.bool_]) -> EwmaState:
        """Return the state re-ordered by `idx`, rows where `fresh` is true reset."""
        out = EwmaState(self.mean[idx], self.var[idx], self.count[idx])
        out.mean[fresh] = np.nan
        out.var[fresh] = 0.0
        out.count[fresh] = 0.0
        return out


def ewma_step(params: EwmaParams, state: EwmaState, x: F64) -> tuple[F64, F64, F64]:
    """Fold one sample per series in; return (deviation in band widths, lower band, upper band).

    The deviation is measured against the band *before* the sample is folded in; NaN samples are
    gaps (deviation 0, state unchanged); the deviation is 0 until `warmup` samples were seen.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        valid = np.isfinite(x)
        xv = np.where(valid, x, 0.0)
        mean = np.where(np.isnan(state.mean), xv, state.mean)
        sd = np.sqrt(state.var)
        scale = np.maximum(sd, 1e-9 * np.maximum(np.abs(mean), 1.0))
        dev = np.where(valid & (state.count >= params.warmup), (xv - mean) / (params.width * scale), 0.0)
        diff = xv - mean
        # Winsorise what an outlier folds in (to the band's edge), so one excursion does not widen the
        # band at once and hide its own continuation; a lasting change still moves the band in.
        limit = np.where(state.count >= params.warmup, params.width * scale, np.inf)
        diff = np.clip(diff, -limit, limit)
        incr = params.alpha * diff
        new_mean = mean + incr
        new_var = (1.0 - params.alpha) * (state.var + diff * incr)
        # Values near the float limit can overflow the update: such a sample is skipped.
        ok = valid & np.isfinite(new_mean) & np.isfinite(new_var)
        state.mean = np.where(ok, new_mean, state.mean)
        state.var = np.where(ok, new_var, state.var)
        state.count = state.count + valid
        lower = mean - params.width * sd
        upper = mean + params.width * sd
    dev = np.nan_to_num(dev, nan=0.0, posinf=1e6, neginf=-1e6)
    return np.clip(dev, -1e6, 1e6), lower, upper


class EwmaAnalyzer(Analyzer):
    """EWMA band findings for the metrics listed in `[analyzers.ewma] metrics` (none by default)."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.analyzers.ewma
        self.params = EwmaParams(width=self.cfg.threshold)
        self.transitions = Transitions("ewma")
        self._index: dict[str, SeriesIndex] = {}
        self._state: dict[str, tuple[EwmaState, NDArray[np.int64]]] = {}

    def analyze(self, now: float) -> Iterable[Finding]:
        findings: list[Finding] = []
        if not self.cfg.metrics:
            return findings
        for metric in self.ctx.store.metrics():
            if not name_matches(metric, self.cfg.metrics):
                continue
            matrix = self.ctx.store.matrix(metric, 1)
            keys = keys_of(matrix.attributes)
            findings.extend(self.transitions.vanished(metric, keys, now))
            if not keys or matrix.values.shape[1] == 0:
                continue
            index = self._index.setdefault(metric, SeriesIndex())
            state, run = self._state.get(metric, (EwmaState.empty(0), np.zeros(0, dtype=np.int64)))
            moved = index.align(keys)
            if moved is not None:
                idx, fresh = moved
                if state.count.size == 0:
                    state, run = EwmaState.empty(len(keys)), np.zeros(len(keys), dtype=np.int64)
                else:
                    state, run = state.take(idx, fresh), np.where(fresh, 0, run[idx])
            x = matrix.values[:, -1]
            dev, lower, upper = ewma_step(self.params, state, x)
            run = np.where(np.abs(dev) >= 1.0, run + 1, np.where(np.isfinite(x), 0, run))
            self._state[metric] = (state, run)
            for i in range(len(keys)):
                fired = self.transitions.is_firing(metric, keys[i])
                what = describe_series(metric, matrix.attributes[i])
                xi = float(x[i])
                if not fired and run[i] >= self.cfg.points:
                    msg = (
                        f"{what} = {fmt_value(xi, 'number')} has been outside its usual band "
                        f"{fmt_value(float(lower[i]), 'number')}..{fmt_value(float(upper[i]), 'number')} "
                        f"for {int(run[i])} samples"
                    )
                    found = self.transitions.update(metric, keys[i], Severity.WARNING, msg, xi, None, now)
                elif fired and run[i] == 0 and np.isfinite(xi):
                    msg = f"{what} back inside its usual band"
                    found = self.transitions.update(metric, keys[i], None, msg, xi, None, now)
                else:
                    found = None
                if found is not None:
                    findings.append(found)
        return findings
