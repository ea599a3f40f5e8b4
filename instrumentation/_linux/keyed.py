"""Parse flat-keyed `name value` files: /proc/vmstat (proc(5)), cgroup v2 cpu.stat and memory.stat
(Documentation/admin-guide/cgroup-v2.rst)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Parsed:
    """Values of one interface file, and the number of lines that did not parse."""

    values: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def parse_flat_keyed(text: str) -> Parsed:
    """Return every `name value` pair of non-negative integers; count the lines that are not."""
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
