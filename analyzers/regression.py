"""Least-squares lines through every series of a window at once, NaN-aware."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Fit:
    """Per series: slope (units per second), fitted value at the last timestamp, R², points, span."""

    slope: F64
    level: F64
    r2: F64
    points: F64
    span: F64


def fit_lines(timestamps: F64, values: F64) -> Fit:
    """Fit value = a + b*t per row of `values[series, time]`, skipping NaN/inf samples.

    A series with fewer than two points or no spread in time gets NaN; a constant series gets
    slope 0 and R² 0 (a flat line explains nothing), never a division by zero.
    """
    t = np.asarray(timestamps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(y) & np.isfinite(t)[None, :]
    t_end = np.nanmax(t) if np.isfinite(t).any() else 0.0
    tc = np.where(ok, t[None, :] - t_end, 0.0)  # centre on the last tick: small numbers, no cancellation
    yc = np.where(ok, y, 0.0)
    n = ok.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mt = tc.sum(axis=1) / n
        my = yc.sum(axis=1) / n
        dt = np.where(ok, tc - mt[:, None], 0.0)
        dy = np.where(ok, yc - my[:, None], 0.0)
        stt = (dt * dt).sum(axis=1)
        syy = (dy * dy).sum(axis=1)
        sty = (dt * dy).sum(axis=1)
        good = (n >= 2) & (stt > 0)
        slope = np.where(good, sty / np.where(stt > 0, stt, 1.0), np.nan)
        r2 = np.where(good & (syy > 0), sty * sty / np.where((stt > 0) & (syy > 0), stt * syy, 1.0), 0.0)
        r2 = np.where(good, np.clip(r2, 0.0, 1.0), np.nan)
        level = np.where(good, my + slope * (0.0 - mt), np.nan)
        tmin = np.where(ok, t[None, :], np.inf).min(axis=1, initial=np.inf)
        tmax = np.where(ok, t[None, :], -np.inf).max(axis=1, initial=-np.inf)
        span = np.where(n >= 1, tmax - tmin, 0.0)
    return Fit(slope, level, r2, n, span)


def time_to_reach(fit: Fit, limit: F64 | float) -> F64:
    """Return seconds until the fitted line reaches `limit` (inf when flat or moving away; 0 if past)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.asarray(limit, dtype=np.float64) - fit.level
        rising = fit.slope > 0
        eta = np.where(rising & (gap > 0), gap / np.where(rising, fit.slope, 1.0), np.inf)
        eta = np.where(rising & (gap <= 0), 0.0, eta)
    return np.where(np.isnan(fit.slope), np.nan, eta)
