"""Parse cgroup v2 interface files (Documentation/admin-guide/cgroup-v2.rst): flat-keyed files
(cpu.stat, memory.stat), nested-keyed io.stat, single values (memory.current, memory.max), and
the pressure (PSI) files."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Parsed:
    """Values of one interface file, and the number of lines that did not parse."""

    values: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def parse_flat_keyed(text: str) -> Parsed:
    """Parse `key value` lines (cpu.stat, memory.stat)."""
    out = Parsed()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            out.malformed += 1
            continue
        try:
            value = int(parts[1])
        except ValueError:
            out.malformed += 1
            continue
        if value < 0:
            out.malformed += 1
            continue
        out.values[parts[0]] = value
    return out


IO_KEYS = ("rbytes", "wbytes", "rios", "wios", "dbytes", "dios")


def parse_io_stat(text: str) -> Parsed:
    """Sum io.stat's `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..` over devices."""
    out = Parsed()
    sums = dict.fromkeys(IO_KEYS, 0)
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        major, sep, minor = parts[0].partition(":")
        if not sep or not major.isdecimal() or not minor.isdecimal():
            out.malformed += 1
            continue
        row: dict[str, int] = {}
        try:
            for pair in parts[1:]:
                key, eq, number = pair.partition("=")
                if not eq:
                    raise ValueError(pair)
                if key in sums:
                    row[key] = int(number)
        except ValueError:
            out.malformed += 1
            continue
        if any(v < 0 for v in row.values()):
            out.malformed += 1
            continue
        for key, value in row.items():
            sums[key] += value
    out.values = sums
    return out


def parse_single(text: str) -> int | None:
    """Return the number of a one-value file (memory.current); None for "max" or anything else."""
    word = text.strip()
    if not word.isdecimal():
        return None
    return int(word)


@dataclass(slots=True)
class Pressure:
    """A PSI file: (some|full) -> field (avg10, avg60, avg300 as percent; total in microseconds)."""

    lines: dict[str, dict[str, float]] = field(default_factory=dict)
    malformed: int = 0


_PSI_FIELDS = frozenset({"avg10", "avg60", "avg300", "total"})


def parse_pressure(text: str) -> Pressure:
    """Parse `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and the `full` line."""
    out = Pressure()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        values: dict[str, float] = {}
        try:
            if kind not in ("some", "full"):
                raise ValueError(kind)
            for pair in parts[1:]:
                key, eq, value = pair.partition("=")
                if not eq or key not in _PSI_FIELDS:
                    raise ValueError(pair)
                number = float(value)
                if not 0 <= number < float("inf"):
                    raise ValueError(pair)
                values[key] = number
        except ValueError:
            out.malformed += 1
            continue
        if "total" not in values:
            out.malformed += 1
            continue
        out.lines[kind] = values
    return out
