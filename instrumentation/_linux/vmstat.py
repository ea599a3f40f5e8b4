"""Parse /proc/vmstat: `name value` lines (proc(5))."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class VmStat:
    """The counters of /proc/vmstat by name."""

    values: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def parse_vmstat(text: str) -> VmStat:
    """Return every `name value` pair; count lines that are not two fields with an integer."""
    out = VmStat()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            out.malformed += 1
            continue
        try:
            out.values[parts[0]] = int(parts[1])
        except ValueError:
            out.malformed += 1
    return out
