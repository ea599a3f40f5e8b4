"""Parse cgroup v2 interface files (Documentation/admin-guide/cgroup-v2.rst): flat-keyed files
(cpu.stat, memory.stat, through .keyed), nested-keyed io.stat and single values (memory.current,
memory.max). The pressure files have the host's format and are parsed by .pressure."""

from __future__ import annotations

from ._numbers import ascii_int
from .keyed import Parsed, parse_flat_keyed

__all__ = ["Parsed", "parse_flat_keyed", "parse_io_stat", "parse_single"]


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
        if not sep or ascii_int(major) is None or ascii_int(minor) is None:
            out.malformed += 1
            continue
        row: dict[str, int] = {}
        try:
            for pair in parts[1:]:
                key, eq, number = pair.partition("=")
                if not eq:
                    raise ValueError(pair)
                if key in sums:
                    value = ascii_int(number)
                    if value is None:
                        raise ValueError(pair)
                    row[key] = value
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
    return ascii_int(text.strip())
