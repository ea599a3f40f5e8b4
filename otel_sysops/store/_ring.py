"""A numpy ring store: raw points for a window plus 1-minute rollups, fixed memory per series.

Layout: every tick has one slot in a shared time ring; each metric owns a time-major block
`raw[tick, series]`, so one tick writes one contiguous row (O(1) per point) and pages of history
not yet written are never touched. Rollups are a second, coarser ring `roll[minute, series, 4]`
(min, max, mean, last) in float32.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

AttrKey = tuple[tuple[str, str], ...]
F64 = NDArray[np.float64]

_INITIAL_CAPACITY = 8
ROLLUP_SECONDS = 60.0
ROLLUP_FIELDS = ("min", "max", "mean", "last")


def attr_key(attributes: Mapping[str, object] | None) -> AttrKey:
    """Return the canonical identity of an attribute set (sorted, values as strings)."""
    if not attributes:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


@dataclass(frozen=True, slots=True)
class SeriesMatrix:
    """Every live series of a metric over the raw window, chronological: `values[series, time]`."""

    name: str
    attributes: list[dict[str, str]]
    timestamps: F64
    values: F64


@dataclass(frozen=True, slots=True)
class Rollups:
    """One series' 1-minute rollups, chronological: minute start times and min, max, mean, last."""

    timestamps: F64
    min: F64
    max: F64
    mean: F64
    last: F64


class _Block:
    """The storage of one metric: slots for its series in the raw and rollup rings."""

    def __init__(
        self, name: str, raw_len: int, roll_len: int, raw_rows: list[int], roll_rows: list[int]
    ) -> None:
        self.name = name
        self.capacity = _INITIAL_CAPACITY
        self.index: dict[AttrKey, int] = {}
        self.keys: list[AttrKey | None] = [None] * self.capacity
        self.free: list[int] = list(range(self.capacity - 1, -1, -1))
        # Zeroed arrays are mapped lazily: only rows that already hold history are written (NaN,
        # "no point") here; the others are written as the rings reach them (begin_tick and
        # _close_minute), so resident memory follows the history actually held.
        self.raw = np.zeros((raw_len, self.capacity))
        self.raw[raw_rows] = np.nan
        self.last_seen = np.full(self.capacity, -np.inf)
        self.roll = np.zeros((roll_len, self.capacity, 4), dtype=np.float32)
        self.roll[roll_rows] = np.nan
        self._reset_acc()

    def _reset_acc(self) -> None:
        self.acc_min = np.full(self.capacity, np.inf)
        self.acc_max = np.full(self.capacity, -np.inf)
        self.acc_sum = np.zeros(self.capacity)
        self.acc_cnt = np.zeros(self.capacity)
        self.acc_last = np.full(self.capacity, np.nan)

    def grow(self, raw_rows: Iterable[int], roll_rows: Iterable[int]) -> None:
        """Double the series capacity, copying only rows that hold data."""
        old, new = self.capacity, self.capacity * 2
        rows = list(raw_rows)
        raw = np.zeros((self.raw.shape[0], new))
        raw[rows] = np.nan
        raw[rows, :old] = self.raw[rows]
        rrows = list(roll_rows)
        roll = np.zeros((self.roll.shape[0], new, 4), dtype=np.float32)
        roll[rrows] = np.nan
        roll[rrows, :old] = self.roll[rrows]
        self.raw, self.roll = raw, roll
        self.last_seen = np.concatenate([self.last_seen, np.full(old, -np.inf)])
        for attr in ("acc_min", "acc_max", "acc_sum", "acc_cnt", "acc_last"):
            fill = {"acc_min": np.inf, "acc_max": -np.inf, "acc_sum": 0.0, "acc_cnt": 0.0}.get(attr, np.nan)
            setattr(self, attr, np.concatenate([getattr(self, attr), np.full(old, fill)]))
        self.keys.extend([None] * old)
        self.free = list(range(new - 1, old - 1, -1)) + self.free
        self.capacity = new


class RingStore:
    """Hold recent history of every series; thread-safe; appended once per tick."""

    def __init__(
        self,
        interval: float = 10.0,
        raw_window: float = 3600.0,
        rollup_window: float = 86400.0,
        max_series: int = 5000,
        evict_after: float = 900.0,
    ) -> None:
        self.interval = interval
        self.raw_len = max(2, math.ceil(raw_window / interval))
        self.roll_len = max(2, math.ceil(rollup_window / ROLLUP_SECONDS))
        self.max_series = max_series
        self.evict_after = evict_after
        self.refused = 0
        self.evicted = 0
        self._lock = threading.RLock()
        self._blocks: dict[str, _Block] = {}
        self._series = 0
        self._ts = np.full(self.raw_len, np.nan)
        self._pos = -1
        self._ticks = 0
        self._rts = np.full(self.roll_len, np.nan)
        self._rpos = -1
        self._rcount = 0
        self._minute: float | None = None
        self._last_evict = -np.inf
        self.on_rollup: list[RollupListener] = []

    # -- writing -----------------------------------------------------------------------------

    @property
    def series_count(self) -> int:
        return self._series

    def begin_tick(self, ts: float) -> None:
        """Open a new time slot at `ts` (seconds since the epoch); closes a minute's rollup if due."""
        with self._lock:
            minute = math.floor(ts / ROLLUP_SECONDS) * ROLLUP_SECONDS
            if self._minute is not None and minute != self._minute:
                self._close_minute()
            self._minute = minute
            self._pos = (self._pos + 1) % self.raw_len
            self._ticks += 1
            self._ts[self._pos] = ts
            for block in self._blocks.values():
                block.raw[self._pos] = np.nan
            if ts - self._last_evict >= min(self.evict_after, 60.0):
                self._evict(ts)
                self._last_evict = ts

    def put(self, name: str, attributes: Sequence[AttrKey], values: Sequence[float] | F64) -> None:
        """Store this tick's values of `name`, one per attribute set; refuse new series past the cap."""
        if self._pos < 0:
            raise RuntimeError("put() before begin_tick()")
        with self._lock:
            block = self._blocks.get(name)
            if block is None:
                block = self._blocks[name] = _Block(
                    name, self.raw_len, self.roll_len, self._raw_rows(), self._roll_rows()
                )
            slots = np.empty(len(attributes), dtype=np.intp)
            keep = np.ones(len(attributes), dtype=bool)
            for i, key in enumerate(attributes):
                slot = block.index.get(key)
                if slot is None:
                    slot = self._new_slot(block, key)
                    if slot is None:
                        keep[i] = False
                        continue
                slots[i] = slot
            vals = np.asarray(values, dtype=np.float64)
            if not keep.all():
                slots, vals = slots[keep], vals[keep]
            if slots.size == 0:
                return
            block.raw[self._pos, slots] = vals
            block.last_seen[slots] = self._ts[self._pos]
            finite = np.isfinite(vals)
            fs, fv = slots[finite], vals[finite]
            block.acc_min[fs] = np.minimum(block.acc_min[fs], fv)
            block.acc_max[fs] = np.maximum(block.acc_max[fs], fv)
            block.acc_sum[fs] += fv
            block.acc_cnt[fs] += 1
            block.acc_last[fs] = fv

    def _new_slot(self, block: _Block, key: AttrKey) -> int | None:
        if self._series >= self.max_series:
            self.refused += 1
            return None
        if not block.free:
            block.grow(self._raw_rows(), self._roll_rows())
        slot = block.free.pop()
        block.index[key] = slot
        block.keys[slot] = key
        # Only rows holding history: writing whole columns would touch every page of the rings.
        block.raw[self._raw_rows(), slot] = np.nan
        block.roll[self._roll_rows(), slot] = np.nan
        self._series += 1
        return slot

    def _raw_rows(self) -> list[int]:
        return list(range(min(self._ticks, self.raw_len)))

    def _roll_rows(self) -> list[int]:
        return list(range(min(self._rcount, self.roll_len)))

    def _evict(self, now: float) -> None:
        for block in self._blocks.values():
            stale = np.nonzero(block.last_seen < now - self.evict_after)[0]
            for slot in stale:
                key = block.keys[slot]
                if key is None:
                    continue
                del block.index[key]
                block.keys[slot] = None
                block.free.append(int(slot))
                block.last_seen[slot] = -np.inf
                self._series -= 1
                self.evicted += 1

    def _close_minute(self) -> None:
        assert self._minute is not None
        self._rpos = (self._rpos + 1) % self.roll_len
        self._rcount += 1
        self._rts[self._rpos] = self._minute
        closed: list[tuple[str, AttrKey, float, float, float, float]] = []
        for block in self._blocks.values():
            has = block.acc_cnt > 0
            row = block.roll[self._rpos]
            row[:] = np.nan
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = block.acc_sum / block.acc_cnt
            row[has, 0] = block.acc_min[has]
            row[has, 1] = block.acc_max[has]
            row[has, 2] = mean[has]
            row[has, 3] = block.acc_last[has]
            if self.on_rollup:
                for slot in np.nonzero(has)[0]:
                    key = block.keys[slot]
                    if key is not None:
                        closed.append(
                            (
                                block.name,
                                key,
                                float(block.acc_min[slot]),
                                float(block.acc_max[slot]),
                                float(mean[slot]),
                                float(block.acc_last[slot]),
                            )
                        )
            block._reset_acc()
        for listener in self.on_rollup:
            listener(self._minute, closed)

    def load_rollups(self, rows: Iterable[tuple[float, str, AttrKey, float, float, float, float]]) -> int:
        """Restore rollups (minute, name, attributes, min, max, mean, last) oldest first; return the count."""
        count = 0
        with self._lock:
            current: float | None = None
            for minute, name, key, vmin, vmax, vmean, vlast in rows:
                if minute != current:
                    current = minute
                    self._rpos = (self._rpos + 1) % self.roll_len
                    self._rcount += 1
                    self._rts[self._rpos] = minute
                    for other in self._blocks.values():
                        other.roll[self._rpos] = np.nan
                found = self._blocks.get(name)
                if found is None:
                    found = self._blocks[name] = _Block(
                        name, self.raw_len, self.roll_len, self._raw_rows(), self._roll_rows()
                    )
                    found.roll[self._rpos] = np.nan
                block = found
                slot = block.index.get(key)
                if slot is None:
                    slot = self._new_slot(block, key)
                    if slot is None:
                        continue
                    # Restored series count as seen now, so eviction gives them a full period.
                    block.last_seen[slot] = np.inf
                block.roll[self._rpos, slot] = (vmin, vmax, vmean, vlast)
                count += 1
            for block in self._blocks.values():
                block.last_seen[np.isposinf(block.last_seen)] = -np.inf
        return count

    # -- reading -----------------------------------------------------------------------------

    def metrics(self) -> list[str]:
        """Return the names of every metric with at least one live series."""
        with self._lock:
            return sorted(name for name, block in self._blocks.items() if block.index)

    def series(self, name: str) -> list[dict[str, str]]:
        """Return the attribute sets of every live series of `name`."""
        with self._lock:
            block = self._blocks.get(name)
            return [] if block is None else [dict(key) for key in block.index]

    def _order(self, n: int | None) -> NDArray[np.intp]:
        count = min(self._ticks, self.raw_len)
        if n is not None:
            count = min(count, n)
        return (np.arange(self._pos - count + 1, self._pos + 1)) % self.raw_len

    def matrix(self, name: str, n: int | None = None) -> SeriesMatrix:
        """Return the last `n` ticks (default: the raw window) of every live series of `name`."""
        with self._lock:
            order = self._order(n)
            block = self._blocks.get(name)
            if block is None or not block.index:
                return SeriesMatrix(name, [], self._ts[order].copy(), np.empty((0, order.size)))
            keys = list(block.index.items())
            slots = np.fromiter((slot for _, slot in keys), dtype=np.intp, count=len(keys))
            values = block.raw[np.ix_(order, slots)].T.copy()
            return SeriesMatrix(name, [dict(key) for key, _ in keys], self._ts[order].copy(), values)

    def last(self, name: str, attributes: Mapping[str, object] | None, n: int) -> tuple[F64, F64]:
        """Return the timestamps and values of the last `n` ticks of one series (NaN where absent)."""
        with self._lock:
            order = self._order(n)
            block = self._blocks.get(name)
            slot = None if block is None else block.index.get(attr_key(attributes))
            if block is None or slot is None:
                return self._ts[order].copy(), np.full(order.size, np.nan)
            return self._ts[order].copy(), block.raw[order, slot].copy()

    def range(
        self, name: str, attributes: Mapping[str, object] | None, start: float, end: float
    ) -> tuple[F64, F64]:
        """Return the raw points of one series with `start <= timestamp <= end`."""
        ts, values = self.last(name, attributes, self.raw_len)
        keep = (ts >= start) & (ts <= end)
        return ts[keep], values[keep]

    def rollups(self, name: str, attributes: Mapping[str, object] | None) -> Rollups:
        """Return the 1-minute rollups of one series, chronological."""
        with self._lock:
            count = min(self._rcount, self.roll_len)
            order = (np.arange(self._rpos - count + 1, self._rpos + 1)) % self.roll_len
            block = self._blocks.get(name)
            slot = None if block is None else block.index.get(attr_key(attributes))
            ts = self._rts[order].copy()
            if block is None or slot is None:
                empty = np.full(order.size, np.nan)
                return Rollups(ts, empty, empty.copy(), empty.copy(), empty.copy())
            data = block.roll[order, slot].astype(np.float64)
            return Rollups(ts, data[:, 0], data[:, 1], data[:, 2], data[:, 3])

    def nbytes(self) -> int:
        """Return the bytes reserved by the arrays (pages never written are not resident)."""
        with self._lock:
            return sum(b.raw.nbytes + b.roll.nbytes for b in self._blocks.values())


class RollupListener(Protocol):
    """Something told about every closed minute (the SQLite persistence)."""

    def __call__(self, minute: float, rows: list[tuple[str, AttrKey, float, float, float, float]]) -> None:
        """Take the rollups of the minute starting at `minute`."""
