"""Read the ring store for people: series for charts, the host summary, the anomalies now."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from otel_sysops.store import Rollups, SeriesMatrix

F64 = NDArray[np.float64]

# What the anomaly analyzer exports: one score per watched series, the series' metric as an attribute.
SCORE_METRIC = "sysops.anomaly.score"
SCORE_ATTRIBUTE = "sysops.metric"
# Series one `series` call returns at most (rollups are read one series at a time).
MAX_SERIES = 500


class StoreView(Protocol):
    """The part of the ring store the API reads."""

    @property
    def interval(self) -> float: ...

    @property
    def raw_len(self) -> int: ...

    def metrics(self) -> list[str]: ...

    def matrix(self, name: str, n: int | None = None) -> SeriesMatrix: ...

    def rollups(self, name: str, attributes: Mapping[str, object] | None) -> Rollups: ...


@dataclass(frozen=True, slots=True)
class Matcher:
    """`key=value` or `key!=value` on a series' attributes; the value may be a shell-style glob."""

    key: str
    value: str
    negate: bool = False

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Parse `key=value` / `key!=value`; raise ValueError naming the form expected."""
        key, sep, value = text.partition("=")
        negate = key.endswith("!")
        key = key.removesuffix("!")
        if not sep or not key:
            raise ValueError(f"match {text!r}: expected KEY=VALUE or KEY!=VALUE")
        return cls(key, value, negate)

    def holds(self, attributes: Mapping[str, str]) -> bool:
        """Return whether the series' attributes satisfy the matcher (a missing key is "")."""
        return fnmatchcase(attributes.get(self.key, ""), self.value) != self.negate


@dataclass(frozen=True, slots=True)
class Query:
    """One line set of a chart: a metric, filtered, as a rate or not, summed by some attributes."""

    metric: str
    matchers: tuple[Matcher, ...] = ()
    rate: bool = False
    sum_by: tuple[str, ...] | None = None
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the query as the `series` parameters that repeat it."""
        out: dict[str, Any] = {"metric": self.metric, "label": self.label, "rate": self.rate}
        out["match"] = [f"{m.key}{'!=' if m.negate else '='}{m.value}" for m in self.matchers]
        out["sum_by"] = None if self.sum_by is None else ",".join(self.sum_by)
        return out


@dataclass(frozen=True, slots=True)
class Chart:
    """A chart of the page: its key, title, unit and the queries drawn on it."""

    key: str
    title: str
    unit: str
    queries: tuple[Query, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Return the chart as JSON."""
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "queries": [q.to_dict() for q in self.queries],
        }


CHARTS = (
    Chart("cpu", "CPU busy", "ratio", (Query("sysops.cpu.busy", label="busy"),)),
    Chart(
        "memory",
        "Memory used",
        "ratio",
        (Query("system.memory.utilization", (Matcher("system.memory.state", "used"),), label="used"),),
    ),
    Chart(
        "disk",
        "Disk I/O",
        "By/s",
        (Query("system.disk.io", rate=True, sum_by=("disk.io.direction",)),),
    ),
    Chart(
        "network",
        "Network",
        "By/s",
        (
            Query(
                "system.network.io",
                (Matcher("network.interface.name", "lo", negate=True),),
                rate=True,
                sum_by=("network.io.direction",),
            ),
        ),
    ),
    Chart(
        "load",
        "Load average",
        "",
        tuple(Query(f"system.cpu.load_average.{w}", label=w) for w in ("1m", "5m", "15m")),
    ),
)


@dataclass(frozen=True, slots=True)
class Lines:
    """The result of a query: shared timestamps and one value row per (grouped) series."""

    timestamps: F64
    attributes: list[dict[str, str]]
    values: F64  # [series, time]
    source: str  # "raw" or "rollup"
    truncated: bool = False


def select(store: StoreView, query: Query, since: float, now: float) -> Lines:
    """Return the points of `query` with timestamps >= `since` (raw points, or rollups further back)."""
    interval = store.interval
    raw_start = now - store.raw_len * interval
    need = max(2, math.ceil((now - since) / interval) + 2)
    if since >= raw_start or store.raw_len >= need:
        matrix = store.matrix(query.metric, min(store.raw_len, need))
        keep = [i for i, a in enumerate(matrix.attributes) if all(m.holds(a) for m in query.matchers)]
        truncated = len(keep) > MAX_SERIES
        keep = keep[:MAX_SERIES]
        attrs = [matrix.attributes[i] for i in keep]
        values = matrix.values[keep] if keep else np.empty((0, matrix.timestamps.size))
        ts = matrix.timestamps
        source = "raw"
    else:
        ts, attrs, values, truncated = _rollups(store, query, since)
        source = "rollup"
    if query.rate:
        ts, values = _rate(ts, values)
    cols = ts >= since
    ts, values = ts[cols], values[:, cols]
    if query.sum_by is not None:
        attrs, values = _sum_by(attrs, values, query.sum_by)
    return Lines(ts, attrs, values, source, truncated)


def _rollups(store: StoreView, query: Query, since: float) -> tuple[F64, list[dict[str, str]], F64, bool]:
    matrix = store.matrix(query.metric, 1)
    attrs = [a for a in matrix.attributes if all(m.holds(a) for m in query.matchers)]
    truncated = len(attrs) > MAX_SERIES
    attrs = attrs[:MAX_SERIES]
    rows: list[F64] = []
    ts: F64 = np.empty(0)
    for a in attrs:
        r = store.rollups(query.metric, a)
        ts = r.timestamps
        rows.append(r.mean if query.rate is False else r.last)
    values = np.vstack(rows) if rows else np.empty((0, ts.size))
    return ts, attrs, values, truncated


def _rate(ts: F64, values: F64) -> tuple[F64, F64]:
    """Per-second increase between neighbouring points; a counter reset (a decrease) is a gap."""
    if ts.size < 2:
        return ts[:0], values[:, :0]
    dt = np.diff(ts)
    dv = np.diff(values, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where((dv >= 0) & (dt > 0), dv / dt, np.nan)
    return ts[1:], rate


def _sum_by(attrs: list[dict[str, str]], values: F64, by: Sequence[str]) -> tuple[list[dict[str, str]], F64]:
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, a in enumerate(attrs):
        groups.setdefault(tuple(a.get(k, "") for k in by), []).append(i)
    out_attrs = [dict(zip(by, key, strict=True)) for key in groups]
    if not groups:
        return [], np.empty((0, values.shape[1]))
    rows = []
    for idx in groups.values():
        block = values[idx]
        present = ~np.isnan(block)
        rows.append(np.where(present.any(axis=0), np.nansum(block, axis=0), np.nan))
    return out_attrs, np.vstack(rows)


def label_of(query: Query, attributes: Mapping[str, str]) -> str:
    """Return a line's label: the query's, else its group's values, else its attributes."""
    if query.label:
        return query.label
    if attributes:
        return ",".join(attributes.values())
    return query.metric


def lines_json(query: Query, lines: Lines) -> dict[str, Any]:
    """Return the `series` answer: timestamps, one entry per series, NaN as null."""
    return {
        "metric": query.metric,
        "source": lines.source,
        "truncated": lines.truncated,
        "timestamps": _floats(lines.timestamps),
        "series": [
            {"attributes": a, "label": label_of(query, a), "values": _floats(row)}
            for a, row in zip(lines.attributes, lines.values, strict=True)
        ],
    }


def _floats(array: F64) -> list[float | None]:
    return [None if math.isnan(v) else v for v in array.tolist()]


def summary(store: StoreView, now: float, top: int = 8) -> dict[str, Any]:
    """Return the host at a glance now: the latest value of each chart's lines and the top processes."""
    charts: dict[str, dict[str, float | None]] = {}
    since = now - 3 * store.interval
    for chart in CHARTS:
        out: dict[str, float | None] = {}
        for query in chart.queries:
            lines = select(store, query, since, now)
            for a, row in zip(lines.attributes, lines.values, strict=True):
                last = row[~np.isnan(row)]
                out[label_of(query, a)] = float(last[-1]) if last.size else None
        charts[chart.key] = out
    return {"timestamp": now, "charts": charts, "top": top_processes(store, top)}


def top_processes(store: StoreView, n: int) -> list[dict[str, Any]]:
    """Return the `n` processes using the most CPU in the latest tick, with their memory."""
    cpu = store.matrix("process.cpu.utilization", 1)
    if not cpu.attributes:
        return []
    memory = store.matrix("process.memory.usage", 1)
    mem_by_pid = {
        a.get("process.pid"): float(v)
        for a, v in zip(memory.attributes, memory.values[:, -1].tolist(), strict=True)
        if not math.isnan(v)
    }
    latest = np.nan_to_num(cpu.values[:, -1], nan=-1.0)
    order = np.argsort(-latest, kind="stable")[:n]
    out = []
    for i in order.tolist():
        if latest[i] < 0:
            continue
        a = cpu.attributes[i]
        out.append(
            {
                "pid": a.get("process.pid"),
                "name": a.get("process.executable.name", ""),
                "owner": a.get("process.owner", ""),
                "cpu": float(latest[i]),
                "memory": mem_by_pid.get(a.get("process.pid")),
            }
        )
    return out


def anomalies(store: StoreView, limit: int, min_score: float) -> list[dict[str, Any]]:
    """Return the series whose anomaly score is highest now (at least `min_score`), and since when."""
    matrix = store.matrix(SCORE_METRIC)
    if not matrix.attributes or matrix.timestamps.size == 0:
        return []
    scores = matrix.values
    now_scores = np.nan_to_num(scores[:, -1], nan=-1.0)
    order = [i for i in np.argsort(-now_scores, kind="stable").tolist() if now_scores[i] >= min_score]
    out = []
    for i in order[:limit]:
        row = scores[i]
        below = np.flatnonzero(~(row >= min_score))
        start = 0 if below.size == 0 else int(below[-1]) + 1
        attrs = dict(matrix.attributes[i])
        metric = attrs.pop(SCORE_ATTRIBUTE, "")
        value = _latest(store, metric, attrs)
        out.append(
            {
                "metric": metric,
                "attributes": attrs,
                "score": float(now_scores[i]),
                "since": float(matrix.timestamps[start]),
                "value": value,
            }
        )
    return out


def _latest(store: StoreView, metric: str, attrs: Mapping[str, str]) -> float | None:
    if not metric:
        return None
    m = store.matrix(metric, 1)
    for a, v in zip(m.attributes, m.values[:, -1].tolist(), strict=True):
        if a == attrs:
            return None if math.isnan(v) else float(v)
    return None


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(text: str, now: float) -> float:
    """Return seconds since the epoch for an epoch number, an ISO 8601 time, or a duration ago (`15m`)."""
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNITS[match.group(2)]
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r}: expected seconds since the epoch, an ISO 8601 time"
            " or a duration ago (30s, 15m, 2h, 7d)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
