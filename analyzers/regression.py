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
    t_ok = np.isfinite(t)
    ok = np.isfinite(y) & t_ok[None, :]
    t_end = float(t[t_ok].max()) if t_ok.any() else 0.0
    # Centre time on the last tick and values on each row's first finite point: small numbers,
    # no cancellation in the sums. The time axis is shared, so its sums are matrix products.
    tc = np.where(t_ok, t - t_end, 0.0)
    w = ok.astype(np.float64)
    yc = np.where(ok, y, 0.0)
    first = yc[np.arange(yc.shape[0]), ok.argmax(axis=1)] if yc.size else np.zeros(yc.shape[0])
    yc -= first[:, None]
    yc *= w
    n = w.sum(axis=1)
    # einsum, not `@`: a BLAS matrix-vector call costs 30x more here (thread start-up on 2 cores).
    st = np.einsum("ij,j->i", w, tc)
    stt = np.einsum("ij,j->i", w, tc * tc)
    sy = yc.sum(axis=1)
    sty = np.einsum("ij,j->i", yc, tc)
    syy = np.einsum("ij,ij->i", yc, yc)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        safe_n = np.where(n > 0, n, 1.0)
        vtt = stt - st * st / safe_n
        vyy = syy - sy * sy / safe_n
        vty = sty - st * sy / safe_n
        good = (n >= 2) & (vtt > 1e-9 * np.maximum(stt, 1.0))
        slope = np.where(good, vty / np.where(good, vtt, 1.0), np.nan)
        flat = vyy <= 1e-12 * np.maximum(syy, 1e-300)
        r2 = np.where(flat, 0.0, vty * vty / np.where(good & ~flat, vtt * vyy, 1.0))
        r2 = np.where(good, np.clip(r2, 0.0, 1.0), np.nan)
        slope = np.where(good & flat, 0.0, slope)
        # Fitted value at the last tick (t = 0 after centring), back in the series' units.
        level = np.where(good, sy / safe_n - slope * st / safe_n + first, np.nan)
    # Time from each row's first finite point to its last (timestamps are chronological).
    if ok.shape[1]:
        lo = t[ok.argmax(axis=1)]
        hi = t[ok.shape[1] - 1 - ok[:, ::-1].argmax(axis=1)]
        span = np.where(n >= 1, hi - lo, 0.0)
    else:
        span = np.zeros(ok.shape[0])
    return Fit(slope, level, r2, n, span)


def time_to_reach(fit: Fit, limit: F64 | float) -> F64:
    """Return seconds until the fitted line reaches `limit` (inf when flat or moving away; 0 if past)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.asarray(limit, dtype=np.float64) - fit.level
        rising = fit.slope > 0
        eta = np.where(rising & (gap > 0), gap / np.where(rising, fit.slope, 1.0), np.inf)
        eta = np.where(rising & (gap <= 0), 0.0, eta)
    return np.where(np.isnan(fit.slope), np.nan, eta)
