"""Parse the one-line and one-value files: /proc/loadavg, /proc/uptime, /proc/sys/fs/file-nr, sysfs values."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadAvg:
    """proc(5): run-queue load averaged over 1, 5 and 15 minutes."""

    m1: float
    m5: float
    m15: float


@dataclass(frozen=True, slots=True)
class FileNr:
    """proc(5) /proc/sys/fs/file-nr: allocated handles, free allocated handles, maximum."""

    allocated: int
    unused: int
    maximum: int


def _finite(word: str) -> float:
    value = float(word)
    if not math.isfinite(value) or value < 0:
        raise ValueError(word)
    return value


def parse_loadavg(text: str) -> LoadAvg | None:
    """Return the three load averages of `/proc/loadavg`, or None when the text does not parse."""
    parts = text.split()
    try:
        return LoadAvg(_finite(parts[0]), _finite(parts[1]), _finite(parts[2]))
    except (IndexError, ValueError):
        return None


def parse_uptime(text: str) -> float | None:
    """Return the seconds since boot of `/proc/uptime` (its first field), or None."""
    parts = text.split()
    try:
        return _finite(parts[0])
    except (IndexError, ValueError):
        return None


def parse_file_nr(text: str) -> FileNr | None:
    """Return the three numbers of `/proc/sys/fs/file-nr`, or None when the text does not parse."""
    parts = text.split()
    if len(parts) != 3:
        return None
    try:
        allocated, unused, maximum = (int(p) for p in parts)
    except ValueError:
        return None
    if min(allocated, unused, maximum) < 0 or unused > allocated:
        return None
    return FileNr(allocated, unused, maximum)


def parse_int(text: str) -> int | None:
    """Return the integer of a one-value sysfs attribute (e.g. `ce_count`, `temp1_input`), or None."""
    try:
        return int(text.strip())
    except ValueError:
        return None
