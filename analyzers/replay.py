"""Offline replay: the live agent's streaming anomaly score over CSV files (`otel-sysops analyze`).

Every input file is a column of one batch, stepped row by row with the same `ensemble_step` the
agent runs each tick, so each score uses only the rows up to it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from otel_sysops.errors import SysopsError

from ._scores import HOST_TOP
from .ensemble import EnsembleParams, EnsembleState, ensemble_step

# The host score file written into each host folder (`otel-sysops analyze --hosts`).
HOST_FILE = "host-score.csv"

F64 = NDArray[np.float64]


class ReplayInputError(SysopsError):
    """An input file cannot be read or has a malformed row (the message names file and line)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One input file: the original timestamp strings, epoch seconds and values."""

    path: Path
    stamps: list[str]
    times: F64
    values: F64
    # The value column as written, echoed to the output unchanged.
    texts: list[str]


def parse_timestamp(text: str) -> float:
    """Return epoch seconds for ISO 8601, `YYYY-MM-DD HH:MM:SS` (UTC when naive) or epoch seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return value
        raise ValueError(f"timestamp {text!r} is not finite")
    stamp = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def read_series(path: Path) -> Series:
    """Read `timestamp,value` rows (a header row is optional); raise ReplayInputError naming the line."""
    stamps: list[str] = []
    texts: list[str] = []
    times: list[float] = []
    values: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for lineno, row in enumerate(csv.reader(fh), start=1):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if lineno == 1 and row[0].strip().lower() == "timestamp":
                    continue
                if len(row) < 2:
                    raise ReplayInputError(
                        f"{path}:{lineno}: expected timestamp,value, got {','.join(row)!r}"
                    )
                try:
                    ts = parse_timestamp(row[0])
                except ValueError:
                    raise ReplayInputError(
                        f"{path}:{lineno}: timestamp {row[0]!r} is not ISO 8601, "
                        "'YYYY-MM-DD HH:MM:SS' or epoch seconds"
                    ) from None
                raw = row[1].strip()
                try:
                    # An empty or "nan" value is a gap; it gets a row and a score of 0.
                    value = float(raw) if raw else math.nan
                except ValueError:
                    raise ReplayInputError(f"{path}:{lineno}: value {row[1]!r} is not a number") from None
                stamps.append(row[0].strip())
                texts.append(raw)
                times.append(ts)
                values.append(value)
    except OSError as exc:
        raise ReplayInputError(f"{path}: cannot be read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ReplayInputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return Series(
        path, stamps, np.asarray(times, dtype=np.float64), np.asarray(values, dtype=np.float64), texts
    )


def infer_interval(times: F64) -> float:
    """Return the typical sampling interval (median positive step), or NaN with fewer than 2 rows."""
    steps = np.diff(times)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.median(steps)) if steps.size else math.nan


def score_batch(series: Sequence[Series], params: EnsembleParams) -> list[F64]:
    """Return the streaming anomaly score of every row of every series, stepping them together."""
    if not series:
        return []
    length = max(s.values.size for s in series)
    values = np.full((len(series), length), np.nan)
    hours = np.zeros((len(series), length), dtype=np.int64)
    for i, s in enumerate(series):
        values[i, : s.values.size] = s.values
        hours[i, : s.times.size] = (np.floor(s.times / 3600.0) % 24).astype(np.int64)
    state = EnsembleState.empty(len(series), params)
    scores = np.zeros_like(values)
    for t in range(length):
        scores[:, t] = ensemble_step(params, state, values[:, t], hours[:, t])
    return [scores[i, : s.values.size] for i, s in enumerate(series)]


def score_series(series: Sequence[Series], params: EnsembleParams | None = None) -> list[F64]:
    """Score every series with the parameters scaled to its own inferred interval."""
    base = params or EnsembleParams()
    groups: dict[EnsembleParams, list[int]] = {}
    for i, s in enumerate(series):
        groups.setdefault(base.scaled(infer_interval(s.times)), []).append(i)
    out: list[F64 | None] = [None] * len(series)
    for scaled, members in groups.items():
        for i, scores in zip(members, score_batch([series[i] for i in members], scaled), strict=True):
            out[i] = scores
    return [s if s is not None else np.zeros(0) for s in out]


def input_files(root: Path) -> list[tuple[Path, Path]]:
    """Return (file, path relative to the output root) for a file or every CSV under a directory."""
    if root.is_file():
        return [(root, Path(root.name))]
    if root.is_dir():
        return [(p, p.relative_to(root)) for p in sorted(root.rglob("*.csv")) if p.is_file()]
    raise ReplayInputError(f"{root}: no such file or directory")


def write_scores(path: Path, series: Series, scores: F64) -> None:
    """Write `timestamp,value,anomaly_score`, one row per input row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "value", "anomaly_score"])
        for stamp, text, score in zip(series.stamps, series.texts, scores, strict=True):
            out.writerow([stamp, text, f"{score:.6f}"])


def host_scores(series: Sequence[Series], scores: Sequence[F64]) -> tuple[list[str], F64]:
    """Return the union of the series' timestamps and the host score at each (mean of the top 3).

    A series without a row at a timestamp counts as 0 there, as a series the agent did not see.
    """
    if not series:
        return [], np.zeros(0)
    times = np.concatenate([s.times for s in series])
    stamps = [t for s in series for t in s.stamps]
    union, first, where = np.unique(times, return_index=True, return_inverse=True)
    grid = np.zeros((len(series), union.size))
    start = 0
    for i, (s, sc) in enumerate(zip(series, scores, strict=True)):
        grid[i, where[start : start + s.times.size]] = sc
        start += s.times.size
    k = min(HOST_TOP, len(series))
    top = np.sort(grid, axis=0)[-k:, :]
    return [stamps[j] for j in first], np.sum(top, axis=0) / HOST_TOP


def write_host(path: Path, stamps: list[str], score: F64) -> None:
    """Write `timestamp,host_score`, one row per timestamp of the host's series."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["timestamp", "host_score"])
        for stamp, value in zip(stamps, score, strict=True):
            out.writerow([stamp, f"{value:.6f}"])


def replay(
    source: Path, output: Path, params: EnsembleParams | None = None, hosts: bool = False
) -> list[Path]:
    """Score every CSV of `source` into the mirrored tree under `output` (a file when source is one).

    With `hosts`, every folder holding CSV files is one host: its series are also combined into
    the host score, written as `host-score.csv` in the mirrored folder.
    """
    files = [(p, rel) for p, rel in input_files(source) if not (hosts and p.name == HOST_FILE)]
    series = [read_series(path) for path, _ in files]
    scores = score_series(series, params)
    written: list[Path] = []
    single = source.is_file() and not output.is_dir()
    for (_, rel), s, sc in zip(files, series, scores, strict=True):
        target = output if single else output / rel
        write_scores(target, s, sc)
        written.append(target)
    if hosts and not single:
        folders: dict[Path, list[int]] = {}
        for i, (_, rel) in enumerate(files):
            folders.setdefault(rel.parent, []).append(i)
        for folder, members in sorted(folders.items()):
            stamps, host = host_scores([series[i] for i in members], [scores[i] for i in members])
            target = output / folder / HOST_FILE
            write_host(target, stamps, host)
            written.append(target)
    return written
