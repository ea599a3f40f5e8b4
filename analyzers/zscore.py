"""Robust z-score over a sliding window (median/MAD), re-baselined after a level shift."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.store import AttrKey

from ._common import Transitions, describe_series, fmt_value, keys_of, name_matches

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# MAD of a normal distribution is 0.6745 sigma: this makes robust z comparable to a plain z.
_MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class ZScoreParams:
    """Window constants: points needed for a baseline, |z| that counts as out, shift length."""

    min_points: int = 30
    threshold: float = 6.0
    # This many consecutive out-of-band points on one side are a level shift, not an anomaly:
    # the baseline restarts at the first of them.
    shift_points: int = 12
    # Floor on the scale, relative to |median|, so a quantised or constant series does not explode.
    min_scale: float = 1e-3


def robust_z(values: F64, start: I64, params: ZScoreParams) -> tuple[F64, I64, F64]:
    """Return the z of the last point of every row of `values[series, time]`, and the new baseline start.

    `start[i]` is the column where series i's baseline begins (earlier points are ignored). When the
    last `shift_points` points are all out on the same side, the baseline restarts at the first of
    them and z is reported against the new level (0 until it has `min_points`).
    """
    n_series, width = values.shape
    if width == 0:
        return np.zeros(n_series), start.copy(), np.full(n_series, np.nan)
    cols = np.arange(width)[None, :]
    finite = np.isfinite(values)
    base_mask = finite & (cols >= start[:, None]) & (cols < width - 1)
    base = np.where(base_mask, values, np.nan)
    count = base_mask.sum(axis=1)
    # nanmedian warns on all-NaN rows; give those rows a dummy value and mask the result.
    safe = np.where((count > 0)[:, None], base, 0.0)
    # Values near the float limit overflow the median's midpoint or the deviations: inf, not a warning.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        med = np.nanmedian(safe, axis=1)
        mad = np.nanmedian(np.abs(safe - med[:, None]), axis=1)
        scale = np.maximum(mad * _MAD_TO_SIGMA, params.min_scale * np.maximum(np.abs(med), 1e-9))
        zall = (values - med[:, None]) / scale[:, None]
    zall = np.nan_to_num(np.where(finite, zall, 0.0), nan=0.0, posinf=1e6, neginf=-1e6)
    enough = count >= params.min_points
    z = np.where(enough & finite[:, -1], zall[:, -1], 0.0)
    k = min(params.shift_points, width)
    tail = zall[:, -k:]
    tail_ok = finite[:, -k:].all(axis=1)
    up = (tail > params.threshold).all(axis=1)
    down = (tail < -params.threshold).all(axis=1)
    shifted = enough & tail_ok & (up | down) & (k == params.shift_points)
    new_start = np.where(shifted, width - k, start).astype(np.int64)
    z = np.where(shifted, 0.0, z)
    return z, new_start, np.where(count > 0, med, np.nan)


class ZScoreAnalyzer(Analyzer):
    """Robust z-score findings for the metrics listed in `[analyzers.zscore] metrics` (none by default)."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.cfg = ctx.settings.analyzers.zscore
        self.params = ZScoreParams(threshold=self.cfg.threshold, shift_points=self.cfg.points)
        self.transitions = Transitions("zscore")
        # Per metric: series identity -> time the baseline starts (after the last level shift).
        self._starts: dict[str, dict[AttrKey, float]] = {}

    def analyze(self, now: float) -> Iterable[Finding]:
        findings: list[Finding] = []
        if not self.cfg.metrics:
            return findings
        for metric in self.ctx.store.metrics():
            if not name_matches(metric, self.cfg.metrics):
                continue
            matrix = self.ctx.store.matrix(metric)
            keys = keys_of(matrix.attributes)
            findings.extend(self.transitions.vanished(metric, keys, now))
            if not keys or matrix.values.shape[1] < 2:
                continue
            starts = self._starts.setdefault(metric, {})
            since = np.asarray([starts.get(k, -np.inf) for k in keys])
            ts = np.where(np.isfinite(matrix.timestamps), matrix.timestamps, -np.inf)
            col = np.searchsorted(ts, since, side="left").astype(np.int64)
            z, new_col, med = robust_z(matrix.values, col, self.params)
            width = matrix.values.shape[1]
            self._starts[metric] = {
                k: float(matrix.timestamps[c]) if c < width else now
                for k, c in zip(keys, new_col.tolist(), strict=True)
            }
            out = np.abs(z) >= self.params.threshold
            for i in range(len(keys)):
                fired = self.transitions.is_firing(metric, keys[i])
                if out[i] == fired and not (fired and abs(z[i]) >= self.params.threshold / 2):
                    continue
                what = describe_series(metric, matrix.attributes[i])
                x = float(matrix.values[i, -1])
                if out[i]:
                    msg = (
                        f"{what} = {fmt_value(x, 'number')} is {z[i]:+.1f} robust deviations "
                        f"from its median {fmt_value(float(med[i]), 'number')}"
                    )
                    found = self.transitions.update(
                        metric, keys[i], Severity.WARNING, msg, x, float(med[i]), now
                    )
                elif fired and abs(z[i]) < self.params.threshold / 2:
                    msg = f"{what} back near its baseline {fmt_value(float(med[i]), 'number')}"
                    found = self.transitions.update(metric, keys[i], None, msg, x, float(med[i]), now)
                else:
                    found = None
                if found is not None:
                    findings.append(found)
        return findings
