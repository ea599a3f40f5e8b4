"""Parse a /proc/pressure/{cpu,memory,io,irq} file (Documentation/accounting/psi.rst)."""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOWS = ("avg10", "avg60", "avg300")


@dataclass(frozen=True, slots=True)
class PressureLine:
    """One line: stall share (percent) over 10 s, 60 s, 300 s and the total stall in microseconds."""

    averages: dict[str, float]
    total_us: int


@dataclass(slots=True)
class Pressure:
    """The `some` and `full` lines of one resource."""

    lines: dict[str, PressureLine] = field(default_factory=dict)
    malformed: int = 0


def parse_pressure(text: str) -> Pressure:
    """Return `some`/`full` lines: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`."""
    out = Pressure()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            kind = parts[0]
            if kind not in ("some", "full"):
                raise ValueError(line)
            pairs = dict(p.split("=", 1) for p in parts[1:])
            averages = {w: float(pairs[w]) for w in WINDOWS}
            if any(not 0 <= v <= 100 for v in averages.values()):
                raise ValueError(line)
            total = int(pairs["total"])
            if total < 0:
                raise ValueError(line)
        except (ValueError, KeyError):
            out.malformed += 1
            continue
        out.lines[kind] = PressureLine(averages, total)
    return out
