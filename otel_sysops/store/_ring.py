"""A numpy ring store: raw points for a window plus rollups, memory fixed at start.

Layout: every tick has one slot in a shared time ring; every series owns one column of two
arrays allocated once for `max_series` columns: `raw[tick, column]` (float64) and
`roll[bucket, column, 4]` (min, max, mean, last; float32) at `rollup_seconds` resolution. The
arrays never grow: a series past the cap is refused (and counted), and an evicted series' column
is reused by the next new one. Columns are handed out lowest first and a tick writes only up to
the highest column in use, so pages that never held a series stay unmapped (not resident).

A series that did not report this tick has no point in it (NaN in its column). If other series
of its metric did report, it has ended and is left out of `matrix()`, `metrics()` and `series()`
until it reports again; its history is kept until `evict_after` has passed, then its column is
freed. A metric that reported nothing in a tick (a gap) keeps its series.
"""

from __future__ import annotations

import heapq
import itertools
import math
import mmap
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

AttrKey = tuple[tuple[str, str], ...]
F64 = NDArray[np.float64]

ROLLUP_SECONDS = 60.0
ROLLUP_FIELDS = ("min", "max", "mean", "last")
# Per column besides the rings: last_seen and the five rollup accumulators (float64 each).
_PER_SERIES_EXTRA = 6 * 8


def _mapped_zeros(shape: tuple[int, ...], dtype: type[np.generic]) -> NDArray[np.generic]:
    """Return a zeroed array in its own private anonymous mapping, never backed by huge pages.

    numpy asks for transparent huge pages for every array of 4 MiB or more (madvise), and the
    kernel then makes a whole 2 MiB page resident when one byte of it is written: a tick that
    writes a few columns of every row would make the entire ring resident. A mapping of our own
    is zero-filled lazily page by page, and MADV_NOHUGEPAGE keeps it in 4 KiB pages.
    """
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE)
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)  # Linux only
    if advice is not None:
        buffer.madvise(advice)
    return np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape))).reshape(shape)


def attr_key(attributes: Mapping[str, object] | None) -> AttrKey:
    """Return the canonical identity of an attribute set (sorted, values as strings)."""
    if not attributes:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in attributes.items()))


def store_bytes(raw_len: int, roll_len: int, max_series: int) -> int:
    """Return the bytes a store of this shape allocates, all of it at start."""
    per_series = raw_len * 8 + roll_len * 4 * 4 + _PER_SERIES_EXTRA
    return max_series * per_series + raw_len * 8 + roll_len * 8


@dataclass(frozen=True, slots=True)
class SeriesMatrix:
    """Every live series of a metric over the raw window, chronological: `values[series, time]`."""

    name: str
    attributes: list[dict[str, str]]
    timestamps: F64
    values: F64


@dataclass(frozen=True, slots=True)
class Rollups:
    """One series' rollups, chronological: bucket start times and min, max, mean, last."""

    timestamps: F64
    min: F64
    max: F64
    mean: F64
    last: F64


class _Metric:
    """The series of one metric: attribute set -> column."""

    __slots__ = ("col_keys", "cols", "index", "last_keys", "last_slots", "last_ts", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.index: dict[AttrKey, int] = {}
        # The keys of the latest put() and their columns, valid while none of them is evicted.
        self.last_keys: list[AttrKey] = []
        self.last_slots: NDArray[np.intp] | None = None
        self.last_ts = -np.inf  # the latest tick in which the metric reported
        # `index` as a key list and a column array (in its order), rebuilt when it changes.
        self.col_keys: list[AttrKey] = []
        self.cols: NDArray[np.intp] | None = None

    def columns(self) -> tuple[list[AttrKey], NDArray[np.intp]]:
        """Return every series' key and column, in `index` order."""
        if self.cols is None:
            self.col_keys = list(self.index)
            self.cols = np.fromiter(self.index.values(), dtype=np.intp, count=len(self.index))
        return self.col_keys, self.cols


class RingStore:
    """Hold recent history of every series in memory fixed at start; thread-safe; appended per tick."""

    def __init__(
        self,
        interval: float = 10.0,
        raw_window: float = 3600.0,
        rollup_window: float = 86400.0,
        max_series: int = 5000,
        evict_after: float = 900.0,
        rollup_seconds: float = ROLLUP_SECONDS,
    ) -> None:
        self.interval = interval
        self.rollup_seconds = rollup_seconds
        self.raw_len = max(2, math.ceil(raw_window / interval))
        self.roll_len = max(2, math.ceil(rollup_window / rollup_seconds))
        self.max_series = max_series
        self.evict_after = evict_after
        self.refused = 0  # new series turned away: the store was full of live ones
        self.evicted = 0  # series freed after `evict_after` without a point
        self.evicted_full = 0  # ended series freed early to make room, the store being full
        self._lock = threading.RLock()
        self._metrics: dict[str, _Metric] = {}
        self._series = 0
        # Zeroed mappings are made resident lazily; only columns below `_high` are ever written.
        self._raw: F64 = _mapped_zeros((self.raw_len, max_series), np.float64)  # type: ignore[assignment]
        self._roll: NDArray[np.float32] = _mapped_zeros(  # type: ignore[assignment]
            (self.roll_len, max_series, 4), np.float32
        )
        self._last_seen = np.full(max_series, -np.inf)
        self._acc_min = np.full(max_series, np.inf)
        self._acc_max = np.full(max_series, -np.inf)
        self._acc_sum = np.zeros(max_series)
        self._acc_cnt = np.zeros(max_series)
        self._acc_last = np.full(max_series, np.nan)
        self._owner: list[tuple[str, AttrKey] | None] = [None] * max_series
        self._free: list[int] = []  # a heap of freed columns below _high
        self._high = 0
        self._ts = np.full(self.raw_len, np.nan)
        self._pos = -1
        self._ticks = 0
        self._rts = np.full(self.roll_len, np.nan)
        self._rpos = -1
        self._rcount = 0
        self._minute: float | None = None
        self._last_evict = -np.inf
        self._restored: list[int] = []
        self.on_rollup: list[RollupListener] = []
        # Bumped whenever a column is freed: columns from `resolve()` stay valid while it holds.
        self.generation = 0

    # -- writing -----------------------------------------------------------------------------

    @property
    def series_count(self) -> int:
        return self._series

    def begin_tick(self, ts: float) -> None:
        """Open a new time slot at `ts` (seconds since the epoch); closes a rollup bucket if due."""
        with self._lock:
            minute = math.floor(ts / self.rollup_seconds) * self.rollup_seconds
            if self._minute is not None and minute != self._minute:
                self._close_minute()
            self._minute = minute
            self._pos = (self._pos + 1) % self.raw_len
            self._ticks += 1
            self._ts[self._pos] = ts
            self._raw[self._pos, : self._high] = np.nan
            if self._restored:
                # Restored series have not reported: give them a full eviction period from now.
                self._last_seen[self._restored] = np.nextafter(ts, -np.inf)
                self._restored = []
            if ts - self._last_evict >= min(self.evict_after, 60.0):
                self._evict(ts)
                self._last_evict = ts

    def put(self, name: str, attributes: Sequence[AttrKey], values: Sequence[float] | F64) -> None:
        """Store this tick's values of `name`, one per attribute set; refuse new series past the cap."""
        self.put_many([(name, attributes, values)])

    def put_many(self, batch: Sequence[tuple[str, Sequence[AttrKey], Sequence[float] | F64]]) -> None:
        """`put` for many metrics at once: the columns are found per metric, the arrays written once."""
        if self._pos < 0:
            raise RuntimeError("put() before begin_tick()")
        with self._lock:
            ts = self._ts[self._pos]
            all_slots: list[NDArray[np.intp]] = []
            all_vals: list[F64] = []
            for name, attributes, values in batch:
                slots, vals = self._columns(name, attributes, values, float(ts))
                if slots.size:
                    all_slots.append(slots)
                    all_vals.append(vals)
            if not all_slots:
                return
            slots = np.concatenate(all_slots) if len(all_slots) > 1 else all_slots[0]
            vals = np.concatenate(all_vals) if len(all_vals) > 1 else all_vals[0]
            if len(all_slots) > 1 and np.unique(slots).size != slots.size:
                for s, v in zip(all_slots, all_vals, strict=True):  # a column twice: in order
                    self._write(s, v, ts)
            else:
                self._write(slots, vals, ts)

    def touch(self, names: Sequence[str], slots: Sequence[NDArray[np.intp]]) -> None:
        """Mark the metrics `names` as reporting in this tick, with their series at `slots`
        (from `resolve()`), before `write()` stores their values: as `put` marks them."""
        if self._pos < 0:
            raise RuntimeError("touch() before begin_tick()")
        with self._lock:
            ts = float(self._ts[self._pos])
            for name, cols in zip(names, slots, strict=True):
                metric = self._metrics.get(name)
                if metric is not None:
                    metric.last_ts = ts
                self._last_seen[cols[cols >= 0]] = ts

    def resolve(self, name: str, attributes: Sequence[AttrKey]) -> NDArray[np.intp]:
        """Return the column of each series of `name` (-1 where refused), giving new series one.

        The columns stay valid for `write()` while `generation` is unchanged; a refused series
        is counted again at every call, as `put` counts it."""
        if self._pos < 0:
            raise RuntimeError("resolve() before begin_tick()")
        with self._lock:
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = _Metric(name)
            ts = float(self._ts[self._pos])
            metric.last_ts = ts  # it reports in this tick, as put() marks it
            return self._assign(metric, attributes, ts)

    def write(
        self, names: Sequence[str], slots: NDArray[np.intp], values: F64, bounds: Sequence[int] | None = None
    ) -> None:
        """Store this tick's `values` in the `slots` from `resolve()` (-1: refused, skipped) of the
        metrics `names`, which all reported in this tick. With `bounds` (the end of each metric's
        slots, in order), a column present twice is written metric by metric, as `put_many` does."""
        if self._pos < 0:
            raise RuntimeError("write() before begin_tick()")
        with self._lock:
            ts = self._ts[self._pos]
            now = float(ts)
            for name in names:
                metric = self._metrics.get(name)
                if metric is not None:
                    metric.last_ts = now
            if bounds is None:
                keep = slots >= 0
                if keep.all():
                    self._write(slots, values, ts)
                else:
                    self._write(slots[keep], values[keep], ts)
                return
            start = 0
            for end in bounds:
                part, vals = slots[start:end], values[start:end]
                keep = part >= 0
                self._write(part[keep], vals[keep], ts)
                start = end

    def _columns(
        self, name: str, attributes: Sequence[AttrKey], values: Sequence[float] | F64, ts: float
    ) -> tuple[NDArray[np.intp], F64]:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = _Metric(name)
        metric.last_ts = ts
        vals = np.asarray(values, dtype=np.float64)
        if metric.last_keys == attributes and metric.last_slots is not None:
            self._last_seen[metric.last_slots] = ts  # the same series as last tick: the same columns
            return metric.last_slots, vals
        slots = self._assign(metric, attributes, ts)
        keep = slots >= 0
        if keep.all():
            metric.last_keys, metric.last_slots = list(attributes), slots
        else:
            slots, vals = slots[keep], vals[keep]
            metric.last_keys, metric.last_slots = [], None
        return slots, vals

    def _assign(self, metric: _Metric, attributes: Sequence[AttrKey], ts: float) -> NDArray[np.intp]:
        """Return the column of each series (-1: refused), new ones given one after the known ones
        are marked seen, so a full store making room never frees a column asked for in this tick."""
        index = metric.index
        slots = np.empty(len(attributes), dtype=np.intp)
        new: list[int] = []
        for i, key in enumerate(attributes):
            slot = index.get(key)
            if slot is None:
                new.append(i)
                continue
            slots[i] = slot
            self._last_seen[slot] = ts
        for i in new:
            slot = self._new_slot(metric, attributes[i], ts)
            slots[i] = -1 if slot is None else slot
            if slot is not None:
                self._last_seen[slot] = ts
        return slots

    def _write(self, slots: NDArray[np.intp], vals: F64, ts: np.float64) -> None:
        self._raw[self._pos, slots] = vals
        self._last_seen[slots] = ts
        finite = np.isfinite(vals)
        fs, fv = slots[finite], vals[finite]
        self._acc_min[fs] = np.minimum(self._acc_min[fs], fv)
        self._acc_max[fs] = np.maximum(self._acc_max[fs], fv)
        self._acc_sum[fs] += fv
        self._acc_cnt[fs] += 1
        self._acc_last[fs] = fv

    def _new_slot(self, metric: _Metric, key: AttrKey, ts: float | None = None) -> int | None:
        if not self._free and self._high >= self.max_series and ts is not None:
            self._evict_ended(ts)
            self._metrics[metric.name] = metric  # kept, if its last series were the ones freed
        if self._free:
            slot = heapq.heappop(self._free)
        elif self._high < self.max_series:
            slot = self._high
            self._high += 1
        else:
            self.refused += 1
            return None
        metric.index[key] = slot
        metric.cols = None
        self._owner[slot] = (metric.name, key)
        # A reused column keeps nothing of its previous series; a new one is NaN where time has run.
        self._raw[self._raw_rows(), slot] = np.nan
        self._roll[self._roll_rows(), slot] = np.nan
        self._last_seen[slot] = -np.inf
        self._acc_min[slot], self._acc_max[slot] = np.inf, -np.inf
        self._acc_sum[slot] = self._acc_cnt[slot] = 0.0
        self._acc_last[slot] = np.nan
        self._series += 1
        return slot

    def _raw_rows(self) -> slice:
        return slice(0, min(self._ticks, self.raw_len))

    def _roll_rows(self) -> slice:
        return slice(0, min(self._rcount, self.roll_len))

    def _evict(self, now: float) -> None:
        stale = np.nonzero(self._last_seen[: self._high] < now - self.evict_after)[0]
        self.evicted += self._free_slots(stale.tolist())

    def _evict_ended(self, now: float) -> None:
        """Free the columns of the longest-ended series early, the store being full.

        A series has ended when its metric reported later than it did (a process that exited);
        a metric that reported nothing (a gap) keeps its series. A batch of the oldest is freed
        at once (1/64 of the store), so a burst of new series does not scan once per series.
        """
        seen = self._last_seen[: self._high]
        waiting = np.nonzero(seen < now)[0]
        ended: list[int] = []
        for slot in waiting.tolist():
            owner = self._owner[slot]
            if owner is not None and seen[slot] < self._metrics[owner[0]].last_ts:
                ended.append(slot)
        if not ended:
            return
        batch = max(1, self.max_series // 64)
        if len(ended) > batch:
            order = np.argsort(seen[ended], kind="stable")[:batch]
            ended = [ended[i] for i in order.tolist()]
        self.evicted_full += self._free_slots(ended)

    def _free_slots(self, slots: list[int]) -> int:
        freed = 0
        for slot in slots:
            owner = self._owner[slot]
            if owner is None:
                continue
            metric = self._metrics[owner[0]]
            del metric.index[owner[1]]
            metric.last_keys, metric.last_slots, metric.cols = [], None, None
            if not metric.index:
                del self._metrics[owner[0]]
            self._owner[slot] = None
            self._last_seen[slot] = -np.inf
            heapq.heappush(self._free, slot)
            self._series -= 1
            self.generation += 1
            freed += 1
        return freed

    def _close_minute(self) -> None:
        assert self._minute is not None
        self._rpos = (self._rpos + 1) % self.roll_len
        self._rcount += 1
        self._rts[self._rpos] = self._minute
        high = self._high
        cnt = self._acc_cnt[:high]
        has = cnt > 0
        row = self._roll[self._rpos, :high]
        row[:] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._acc_sum[:high] / cnt
        row[has, 0] = self._acc_min[:high][has]
        row[has, 1] = self._acc_max[:high][has]
        row[has, 2] = mean[has]
        row[has, 3] = self._acc_last[:high][has]
        closed: list[tuple[str, AttrKey, float, float, float, float]] = []
        if self.on_rollup:
            for slot in np.nonzero(has)[0].tolist():
                owner = self._owner[slot]
                if owner is not None:
                    closed.append(
                        (
                            owner[0],
                            owner[1],
                            float(self._acc_min[slot]),
                            float(self._acc_max[slot]),
                            float(mean[slot]),
                            float(self._acc_last[slot]),
                        )
                    )
        self._acc_min[:high] = np.inf
        self._acc_max[:high] = -np.inf
        self._acc_sum[:high] = 0.0
        self._acc_cnt[:high] = 0.0
        self._acc_last[:high] = np.nan
        for listener in self.on_rollup:
            listener(self._minute, closed)

    def load_rollups(self, rows: Iterable[tuple[float, str, AttrKey, float, float, float, float]]) -> int:
        """Restore rollups (bucket, name, attributes, min, max, mean, last) oldest first; return the count."""
        count = 0
        with self._lock:
            current: float | None = None
            restored: list[int] = []
            for minute, name, key, vmin, vmax, vmean, vlast in rows:
                if minute != current:
                    current = minute
                    self._rpos = (self._rpos + 1) % self.roll_len
                    self._rcount += 1
                    self._rts[self._rpos] = minute
                    self._roll[self._rpos, : self._high] = np.nan
                metric = self._metrics.get(name)
                if metric is None:
                    metric = self._metrics[name] = _Metric(name)
                slot = metric.index.get(key)
                if slot is None:
                    slot = self._new_slot(metric, key)
                    if slot is None:
                        continue
                    restored.append(slot)
                self._roll[self._rpos, slot] = (vmin, vmax, vmean, vlast)
                count += 1
            for name in [n for n, m in self._metrics.items() if not m.index]:
                del self._metrics[name]
            self._restored.extend(restored)
        return count

    # -- reading -----------------------------------------------------------------------------

    def _live(self, metric: _Metric) -> list[tuple[AttrKey, int]]:
        """The series of `metric` that reported in the latest tick in which the metric reported.

        A metric with no point at all in a tick (its collector failed or skipped) is a gap: its
        series stay (with NaN for that tick). A series missing from a tick in which others of
        its metric reported has ended (a process that exited).
        """
        keys, cols = metric.columns()
        live = self._last_seen[cols] == metric.last_ts
        if live.all():
            return list(zip(keys, cols.tolist(), strict=True))
        return [(keys[i], int(cols[i])) for i in np.flatnonzero(live).tolist()]

    def metrics(self) -> list[str]:
        """Return the names of every metric with a live series."""
        with self._lock:
            return sorted(name for name, metric in self._metrics.items() if self._live(metric))

    def series(self, name: str) -> list[dict[str, str]]:
        """Return the attribute sets of the live series of `name`."""
        with self._lock:
            metric = self._metrics.get(name)
            return [] if metric is None else [dict(key) for key, _ in self._live(metric)]

    def _order(self, n: int | None) -> NDArray[np.intp]:
        count = min(self._ticks, self.raw_len)
        if n is not None:
            count = min(count, n)
        return (np.arange(self._pos - count + 1, self._pos + 1)) % self.raw_len

    def matrix(self, name: str, n: int | None = None) -> SeriesMatrix:
        """Return the last `n` ticks (default: the raw window) of every live series of `name`."""
        with self._lock:
            order = self._order(n)
            metric = self._metrics.get(name)
            live = [] if metric is None else self._live(metric)
            if not live:
                return SeriesMatrix(name, [], self._ts[order].copy(), np.empty((0, order.size)))
            slots = np.fromiter((slot for _, slot in live), dtype=np.intp, count=len(live))
            values = self._raw[np.ix_(order, slots)].T.copy()
            return SeriesMatrix(name, [dict(key) for key, _ in live], self._ts[order].copy(), values)

    def latest(self, select: Callable[[str], bool]) -> list[tuple[str, list[AttrKey], F64]]:
        """Return, for every selected metric with a live series (by name), the live series' keys
        and their values in the latest tick: `matrix(name, 1)` for many metrics under one lock."""
        out: list[tuple[str, list[AttrKey], F64]] = []
        with self._lock:
            if not self._ticks:
                return out
            names = [name for name in sorted(self._metrics) if select(name)]
            chosen = [(name, *self._metrics[name].columns()) for name in names]
            chosen = [entry for entry in chosen if entry[2].size]
            if not chosen:
                return out
            # One gather for every selected series: its value now and whether it is live.
            cols = np.concatenate([c for _, _, c in chosen])
            sizes = [c.size for _, _, c in chosen]
            now = np.repeat([self._metrics[name].last_ts for name, _, _ in chosen], sizes)
            live = self._last_seen[cols] == now
            values = self._raw[self._pos, cols]
            starts = list(itertools.accumulate(sizes, initial=0))[:-1]
            counts = np.add.reduceat(live, starts).tolist()
            for (name, keys, _), size, start, count in zip(chosen, sizes, starts, counts, strict=True):
                part = values[start : start + size]
                if count == size:
                    out.append((name, list(keys), part))
                elif count:
                    picked = np.flatnonzero(live[start : start + size])
                    out.append((name, [keys[i] for i in picked.tolist()], part[picked]))
        return out

    def _slot(self, name: str, attributes: Mapping[str, object] | None) -> int | None:
        metric = self._metrics.get(name)
        return None if metric is None else metric.index.get(attr_key(attributes))

    def last(self, name: str, attributes: Mapping[str, object] | None, n: int) -> tuple[F64, F64]:
        """Return the timestamps and values of the last `n` ticks of one series (NaN where absent)."""
        with self._lock:
            order = self._order(n)
            slot = self._slot(name, attributes)
            if slot is None:
                return self._ts[order].copy(), np.full(order.size, np.nan)
            return self._ts[order].copy(), self._raw[order, slot].copy()

    def range(
        self, name: str, attributes: Mapping[str, object] | None, start: float, end: float
    ) -> tuple[F64, F64]:
        """Return the raw points of one series with `start <= timestamp <= end`."""
        ts, values = self.last(name, attributes, self.raw_len)
        keep = (ts >= start) & (ts <= end)
        return ts[keep], values[keep]

    def rollups(self, name: str, attributes: Mapping[str, object] | None) -> Rollups:
        """Return the rollups of one series, chronological."""
        with self._lock:
            count = min(self._rcount, self.roll_len)
            order = (np.arange(self._rpos - count + 1, self._rpos + 1)) % self.roll_len
            slot = self._slot(name, attributes)
            ts = self._rts[order].copy()
            if slot is None:
                empty = np.full(order.size, np.nan)
                return Rollups(ts, empty, empty.copy(), empty.copy(), empty.copy())
            data = self._roll[order, slot].astype(np.float64)
            return Rollups(ts, data[:, 0], data[:, 1], data[:, 2], data[:, 3])

    def nbytes(self) -> int:
        """Return the bytes the store allocated (all at start; pages never written stay unmapped)."""
        arrays = (
            self._raw,
            self._roll,
            self._last_seen,
            self._acc_min,
            self._acc_max,
            self._acc_sum,
            self._acc_cnt,
            self._acc_last,
            self._ts,
            self._rts,
        )
        return sum(a.nbytes for a in arrays)


class RollupListener(Protocol):
    """Something told about every closed minute (the SQLite persistence)."""

    def __call__(self, minute: float, rows: list[tuple[str, AttrKey, float, float, float, float]]) -> None:
        """Take the rollups of the minute starting at `minute`."""
