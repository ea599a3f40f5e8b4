"""Ensemble anomaly score in [0, 1] per series, streaming, with constant memory per series.

Members (each a calibrated "how rare is this" rather than a raw distance, so one threshold means
the same thing on a smooth series and on a heavy-tailed one):

* **new extreme**: the value leaves the min/max range of a bounded horizon (kept as per-block
  min/max, not raw points), ranked by how far it leaves it and how long that side held;
* **level shift**: the same on a short moving mean, down-weighted (catches shifts hidden in noise);
* **stuck**: a series that used to move has repeated the same value for a long run;
* **drift**: consecutive blocks each setting a horizon record (a leak, a filling disk);
* **EWMA z**: the distance from a day-long exponentially weighted mean in weighted standard
  deviations, scored only when it exceeds what it scored recently and never when the value lies
  inside what this time of day did yesterday (catches co-moving in-range deviations on hosts).

Ranges are floored at a fraction of the whole range seen so far and a break must exceed a margin,
so a near-flat series blipping as before and float rounding do not count as breaks. The score is
the largest weighted member, zero during warm-up; optionally the values are first made relative
to an hour-of-day baseline (seasonal mode).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import ceil

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

# Smoothing of the change rate (about the last 100 samples), and the rate above which a series
# counts as one that moves (changes on at least half of its samples).
_RATE_ALPHA = 0.01
_MOVING = 0.5
# Relative resolution of the input (of the larger of |value| and 1): float32 keeps ~7 digits and
# text exports often 6 decimals; differences below this are rounding, not behaviour.
_RESOLUTION = 1e-6


@dataclass(frozen=True, slots=True)
class EnsembleParams:
    """Constants of the ensemble score (see docs/analyzers.md for why each has its value)."""

    # Rows per block of the bounded horizon and number of blocks kept (horizon = block * blocks).
    block: int = 64
    blocks: int = 40
    # Rows a side must have held before a break of it scores fully (rarer breaks rank higher).
    quiet: int = 640
    # Relative excess (of the horizon's range) at which the distance factor reaches 1 - 1/e.
    excess: float = 0.25
    # Rows in the short moving mean of the level-shift member, and that member's weight.
    mean_rows: int = 8
    shift_weight: float = 0.8
    # Rows of identical values that make a moving series "stuck", and that member's weight.
    stuck_rows: int = 60
    stuck_weight: float = 0.6
    # Consecutive record blocks that make a drift (a slow leak, a filling disk), and its weight.
    drift_blocks: int = 3
    drift_weight: float = 0.5
    # Rows seen before any score is given.
    warmup: int = 256
    # Subtract an hour-of-day baseline (exponentially weighted per hour slot) first.
    seasonal: bool = False
    seasonal_alpha: float = 0.1
    # Time the row counts above must cover at least, whatever the sampling interval: the horizon
    # spans more than a day so a daily cycle is inside the range; `quiet` and `stuck` likewise.
    horizon_seconds: float = 2 * 86400.0
    quiet_seconds: float = 12 * 3600.0
    stuck_seconds: float = 1800.0
    # Floor of the range scale, as a fraction of the whole range the series has shown so far: a
    # series that held still for the horizon but moved before does not saturate on a small blip.
    range_floor: float = 0.1
    # Smallest excess (as a fraction of that scale) that counts as a break: rounding and jitter
    # at the edge of the range are not breaks.
    min_excess: float = 0.02
    # EWMA z member: time constant of the mean and variance, the z at which it starts to score,
    # the z per 1 - 1/e above that, its weight (0: off) and its sigma floor (fraction of range).
    z_seconds: float = 86400.0
    z_start: float = 5.0
    z_scale: float = 3.0
    z_weight: float = 1.0
    z_floor: float = 0.01
    # Memory of the z member's last score (seconds, decaying): it scores again only above what it
    # scored recently, so a long excursion fires once and then again only when it grows.
    z_memory_seconds: float = 2 * 86400.0
    # Rows averaged before the z member compares (at most mean_rows): a lone spike is the range
    # member's business; the z member is for deviations that last.
    z_rows: int = 4

    def scaled(self, interval: float) -> EnsembleParams:
        """Return the parameters in rows for a series sampled every `interval` seconds."""
        if not (interval > 0 and np.isfinite(interval)):
            return self
        block = max(self.block, ceil(self.horizon_seconds / interval / self.blocks))
        quiet = max(self.quiet, ceil(self.quiet_seconds / interval))
        stuck = max(self.stuck_rows, ceil(self.stuck_seconds / interval))
        return replace(self, block=block, quiet=quiet, stuck_rows=stuck, interval=interval)

    # Sampling interval the row counts were scaled for (seconds; NaN when unscaled).
    interval: float = float("nan")

    def z_alpha(self) -> float:
        """Return the EWMA weight of one sample for the z member."""
        interval = self.interval if np.isfinite(self.interval) else 60.0
        return min(1.0, interval / self.z_seconds)


@dataclass(slots=True)
class _Range:
    """A bounded-horizon range tracker: per-block min/max ring plus the block being filled."""

    bmin: F64
    bmax: F64
    cmin: F64
    cmax: F64
    last_up: I64
    last_down: I64

    @classmethod
    def empty(cls, n: int, blocks: int) -> _Range:
        return cls(
            np.full((n, blocks), np.nan),
            np.full((n, blocks), np.nan),
            np.full(n, np.inf),
            np.full(n, -np.inf),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
        )

    def take(self, idx: NDArray[np.intp], fresh: NDArray[np.bool_]) -> _Range:
        out = _Range(
            self.bmin[idx],
            self.bmax[idx],
            self.cmin[idx],
            self.cmax[idx],
            self.last_up[idx],
            self.last_down[idx],
        )
        out.bmin[fresh] = np.nan
        out.bmax[fresh] = np.nan
        out.cmin[fresh] = np.inf
        out.cmax[fresh] = -np.inf
        out.last_up[fresh] = 0
        out.last_down[fresh] = 0
        return out


@dataclass(slots=True)
class EnsembleState:
    """Per-series arrays the caller owns between steps (one row per series)."""

    seen: I64
    level: _Range
    shift: _Range
    recent: F64
    run: I64
    prev: F64
    season: F64
    # How often the value changes (EWMA of "differs from the previous sample"), and that rate when
    # the current run of identical values began: only a series that used to move can be stuck.
    rate: F64
    rate_before: F64
    # Decreases seen; a series that never decreased through warm-up is a counter.
    falls: I64
    counter: NDArray[np.bool_]
    # Consecutive closed blocks that set a new horizon maximum (minimum).
    drift_up: I64
    drift_down: I64
    # Row of the last sharp break (level member >= 0.5): a drift right after one is the series
    # settling at its new level, not a leak.
    sharp_at: I64
    # Whole range seen so far (the scale floor), EWMA mean and variance, and the running maximum
    # of the z member inside the current excursion (it scores only when it rises: fires sparsely).
    gmin: F64
    gmax: F64
    zmean: F64
    zvar: F64
    zpeak: F64

    @classmethod
    def empty(cls, n: int, params: EnsembleParams) -> EnsembleState:
        """Return the state of `n` series that have seen nothing."""
        return cls(
            np.zeros(n, dtype=np.int64),
            _Range.empty(n, params.blocks),
            _Range.empty(n, params.blocks),
            np.full((n, params.mean_rows), np.nan),
            np.zeros(n, dtype=np.int64),
            np.full(n, np.nan),
            np.full((n, 24), np.nan),
            np.zeros(n),
            np.zeros(n),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=bool),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
            np.full(n, -(2**62), dtype=np.int64),
            np.full(n, np.inf),
            np.full(n, -np.inf),
            np.full(n, np.nan),
            np.zeros(n),
            np.zeros(n),
        )

    def take(self, idx: NDArray[np.intp], fresh: NDArray[np.bool_]) -> EnsembleState:
        """Return the state re-ordered by `idx`, rows where `fresh` is true reset (new series)."""
        out = EnsembleState(
            self.seen[idx],
            self.level.take(idx, fresh),
            self.shift.take(idx, fresh),
            self.recent[idx],
            self.run[idx],
            self.prev[idx],
            self.season[idx],
            self.rate[idx],
            self.rate_before[idx],
            self.falls[idx],
            self.counter[idx],
            self.drift_up[idx],
            self.drift_down[idx],
            self.sharp_at[idx],
            self.gmin[idx],
            self.gmax[idx],
            self.zmean[idx],
            self.zvar[idx],
            self.zpeak[idx],
        )
        out.gmin[fresh] = np.inf
        out.gmax[fresh] = -np.inf
        out.zmean[fresh] = np.nan
        out.zvar[fresh] = 0.0
        out.zpeak[fresh] = 0.0
        out.seen[fresh] = 0
        out.recent[fresh] = np.nan
        out.run[fresh] = 0
        out.prev[fresh] = np.nan
        out.season[fresh] = np.nan
        out.rate[fresh] = 0.0
        out.rate_before[fresh] = 0.0
        out.falls[fresh] = 0
        out.counter[fresh] = False
        out.drift_up[fresh] = 0
        out.drift_down[fresh] = 0
        out.sharp_at[fresh] = -(2**62)
        return out


def _range_score(
    params: EnsembleParams, rng: _Range, x: F64, valid: NDArray[np.bool_], seen: I64, whole: F64
) -> tuple[F64, F64]:
    """Score `x` against the horizon range and fold it in; return (score, horizon span)."""
    with np.errstate(invalid="ignore"):
        hi = np.fmax(np.max(np.where(np.isnan(rng.bmax), -np.inf, rng.bmax), axis=1), rng.cmax)
        lo = np.fmin(np.min(np.where(np.isnan(rng.bmin), np.inf, rng.bmin), axis=1), rng.cmin)
        span = hi - lo
        known = np.isfinite(span)
        scale = np.fmax(span, params.range_floor * whole)
        scale = np.where(known & (scale > 0), scale, np.maximum(np.abs(hi), 1.0) * 1e-3)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        excess = np.where(x > hi, x - hi, np.where(x < lo, lo - x, 0.0)) / scale
        excess = np.where(np.isfinite(excess), excess, 0.0)
        # Below the resolution of the data (float32, 6-decimal text) a move is no break.
        resolution = _RESOLUTION * np.fmax(np.fmax(np.abs(hi), np.abs(lo)), 1.0) / scale
        broke = valid & known & (excess > np.fmax(params.min_excess, resolution))
        up = broke & (x > hi)
        down = broke & (x < lo)
        since = np.where(up, seen - rng.last_up, np.where(down, seen - rng.last_down, 0)).astype(np.float64)
    far = 1.0 - np.exp(-np.minimum(excess, 50.0) / params.excess)
    # A break far outside the range is rare however recently the range was nudged.
    rare = np.minimum(since / params.quiet + excess / 4.0, 1.0)
    score = np.where(up | down, far * rare, 0.0)
    rng.last_up[up] = seen[up]
    rng.last_down[down] = seen[down]
    # Fold the value into the block being filled; close the block every `block` rows.
    rng.cmin = np.where(valid, np.fmin(rng.cmin, x), rng.cmin)
    rng.cmax = np.where(valid, np.fmax(rng.cmax, x), rng.cmax)
    return score, np.where(known, span, 0.0)


def _close_blocks(
    params: EnsembleParams, rng: _Range, full: NDArray[np.bool_], slot: I64
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Store the filled blocks; return which closed above every block kept (and below every one)."""
    rows = np.nonzero(full)[0]
    up = np.zeros(full.size, dtype=bool)
    down = np.zeros(full.size, dtype=bool)
    if rows.size:
        kept_max = np.max(np.where(np.isnan(rng.bmax[rows]), -np.inf, rng.bmax[rows]), axis=1)
        kept_min = np.min(np.where(np.isnan(rng.bmin[rows]), np.inf, rng.bmin[rows]), axis=1)
        up[rows] = rng.cmax[rows] > kept_max
        down[rows] = rng.cmin[rows] < kept_min
        rng.bmin[rows, slot[rows]] = rng.cmin[rows]
        rng.bmax[rows, slot[rows]] = rng.cmax[rows]
        rng.cmin[rows] = np.inf
        rng.cmax[rows] = -np.inf
    return up, down


def _z_member(
    params: EnsembleParams, state: EnsembleState, x: F64, probe: F64, valid: NDArray[np.bool_], whole: F64
) -> F64:
    """EWMA z of `probe` (the mean of the last rows) against the mean and variance before `x`.

    Scored only while it rises above what it scored recently; the EWMA then takes `x` in.
    """
    alpha = params.z_alpha()
    mean = state.zmean
    first = valid & np.isnan(mean)
    dev = np.where(valid & ~first, x - mean, 0.0)
    # The variance starts at 0: divide by the weight it has gathered so far (bias correction).
    gathered = -np.expm1(np.log1p(-alpha) * np.maximum(state.seen, 1)) if alpha < 1 else np.ones(x.size)
    sigma = np.fmax(np.sqrt(state.zvar / gathered), params.z_floor * whole)
    magnitude = np.maximum(np.abs(np.where(first | np.isnan(mean), x, mean)), 1.0)
    sigma = np.fmax(sigma, 10 * _RESOLUTION * magnitude)
    z = np.where(valid & ~first & np.isfinite(probe), np.abs(probe - mean), 0.0) / sigma
    member = 1.0 - np.exp(-np.maximum(z - params.z_start, 0.0) / params.z_scale)
    rising = member > state.zpeak
    if params.z_memory_seconds > 0:
        interval = params.interval if np.isfinite(params.interval) else 60.0
        keep = np.exp(-interval / params.z_memory_seconds)
        state.zpeak = np.where(valid, np.fmax(state.zpeak * keep, member), state.zpeak)
    else:
        state.zpeak = np.where(valid, np.where(member > 0, np.fmax(state.zpeak, member), 0.0), state.zpeak)
    state.zmean = np.where(first, x, np.where(valid, mean + alpha * dev, mean))
    state.zvar = np.where(valid & ~first, (1.0 - alpha) * (state.zvar + alpha * dev * dev), state.zvar)
    return np.where(valid & rising, member, 0.0)


def _probe(params: EnsembleParams, state: EnsembleState, x: F64, seen: I64) -> F64:
    """Return the mean of the last `z_rows` samples (from the moving-mean ring; NaN until filled)."""
    zrows = min(max(params.z_rows, 1), params.mean_rows)
    if zrows == 1:
        return x
    back = (seen[:, None] - np.arange(zrows)[None, :]) % params.mean_rows
    total = np.sum(state.recent[np.arange(x.size)[:, None], back], axis=1)
    return np.where(seen + 1 >= zrows, total / zrows, np.nan)


def _as_yesterday(params: EnsembleParams, rng: _Range, x: F64, seen: I64, whole: F64) -> NDArray[np.bool_]:
    """Return where `x` lies inside the range of the blocks around this time a day ago."""
    interval = params.interval if np.isfinite(params.interval) else 60.0
    day = round(86400.0 / interval / params.block)
    if day < 1 or day + 1 >= params.blocks:
        return np.zeros(x.size, dtype=bool)
    rows = np.arange(x.size)[:, None]
    cols = ((seen // params.block)[:, None] - day + np.arange(-1, 2)[None, :]) % params.blocks
    with np.errstate(invalid="ignore"):
        hi = np.max(np.where(np.isnan(rng.bmax[rows, cols]), -np.inf, rng.bmax[rows, cols]), axis=1)
        lo = np.min(np.where(np.isnan(rng.bmin[rows, cols]), np.inf, rng.bmin[rows, cols]), axis=1)
        margin = params.min_excess * np.fmax(hi - lo, params.range_floor * whole)
        inside: NDArray[np.bool_] = (x <= hi + margin) & (x >= lo - margin)
    return inside


def ensemble_step(params: EnsembleParams, state: EnsembleState, x: F64, hour: I64 | None = None) -> F64:
    """Fold one sample per series into `state`; return each series' anomaly score in [0, 1].

    NaN or infinite samples are gaps: they score 0 and change nothing. Values near the float limit
    may overflow intermediate ranges to inf; such rows score by comparison only, never NaN.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        score = _step(params, state, x, hour)
    return np.clip(np.nan_to_num(score, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)


def _step(params: EnsembleParams, state: EnsembleState, x: F64, hour: I64 | None) -> F64:
    x = np.asarray(x, dtype=np.float64)
    valid = np.isfinite(x)
    x = np.where(valid, x, 0.0)
    if params.seasonal and hour is not None:
        rows = np.arange(x.size)
        base = state.season[rows, hour]
        state.season[rows, hour] = np.where(
            valid,
            np.where(np.isnan(base), x, base + params.seasonal_alpha * (x - base)),
            base,
        )
        x = x - np.where(np.isnan(base), x, base)
    seen = state.seen
    whole = np.where(np.isfinite(state.gmax - state.gmin), state.gmax - state.gmin, 0.0)
    state.gmin = np.where(valid, np.fmin(state.gmin, x), state.gmin)
    state.gmax = np.where(valid, np.fmax(state.gmax, x), state.gmax)
    level, span = _range_score(params, state.level, x, valid, seen, whole)

    # Short moving mean: a ring of the last `mean_rows` valid samples.
    slot = seen % params.mean_rows
    rows = np.nonzero(valid)[0]
    state.recent[rows, slot[rows]] = x[rows]
    filled = seen + 1 >= params.mean_rows
    with np.errstate(invalid="ignore"):
        mean = np.where(
            filled, np.sum(np.where(filled[:, None], state.recent, 0.0) / params.mean_rows, axis=1), np.nan
        )
    shift, _ = _range_score(params, state.shift, mean, valid & filled, seen, whole)
    zscore = _z_member(params, state, x, _probe(params, state, x, seen), valid, whole)

    # Stuck: a long run of one value in a series that used to change on most samples (a quantised
    # or rarely-updated series repeating itself is not stuck).
    same = valid & (x == state.prev)
    moved = valid & ~same & ~np.isnan(state.prev)
    state.rate = np.where(
        valid & ~np.isnan(state.prev), state.rate + _RATE_ALPHA * (moved - state.rate), state.rate
    )
    state.rate_before = np.where(moved, state.rate, state.rate_before)
    state.run = np.where(valid, np.where(same, state.run + 1, 0), state.run)
    stuck = (state.run == params.stuck_rows) & (span > 0) & (state.rate_before >= _MOVING)

    # Counters: a series that never decreased through warm-up only ever breaks its maximum, and a
    # reset to zero is routine; score it on "stuck" only (a counter that stops is worth knowing).
    state.falls = state.falls + (valid & (x < state.prev))
    state.counter = state.counter | ((seen == params.warmup) & (state.falls == 0) & (span > 0))
    state.prev = np.where(valid, x, state.prev)
    level = np.where(state.counter, 0.0, level)
    shift = np.where(state.counter, 0.0, shift)

    score = np.maximum(level, params.shift_weight * shift)
    # The z member stays quiet on what happened at this time of day yesterday (a daily job).
    zscore = np.where(_as_yesterday(params, state.level, x, seen, whole), 0.0, zscore)
    score = np.maximum(score, np.where(state.counter, 0.0, params.z_weight * zscore))
    score = np.maximum(score, np.where(stuck, params.stuck_weight, 0.0))
    score = np.where(valid & (seen >= params.warmup), score, 0.0)

    block_slot = (seen // params.block) % params.blocks
    full = valid & ((seen + 1) % params.block == 0)
    up, down = _close_blocks(params, state.level, full, block_slot)
    _close_blocks(params, state.shift, full, block_slot)
    # Drift: consecutive blocks each beyond every block of a full horizon. A stationary series
    # makes such records ever more rarely; a leak or a filling disk makes one every block.
    state.drift_up = np.where(full, np.where(up, state.drift_up + 1, 0), state.drift_up)
    state.drift_down = np.where(full, np.where(down, state.drift_down + 1, 0), state.drift_down)
    state.sharp_at = np.where(valid & (level >= 0.5), seen, state.sharp_at)
    horizon = seen + 1 >= params.block * params.blocks
    drifting = full & horizon & ~state.counter & (seen - state.sharp_at >= params.quiet)
    drifting &= (state.drift_up == params.drift_blocks) | (state.drift_down == params.drift_blocks)
    score = np.maximum(score, np.where(drifting, params.drift_weight, 0.0))
    state.seen = seen + valid
    return score
