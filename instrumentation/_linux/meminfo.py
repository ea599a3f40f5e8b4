"""Parse /proc/meminfo and the per-node meminfo files of /sys/devices/system/node (proc(5))."""

from __future__ import annotations

from dataclasses import dataclass, field

_UNITS = {"kB": 1024, "": 1}


@dataclass(slots=True)
class MemInfo:
    """Fields of a meminfo file in bytes (page counts such as HugePages_Total as plain numbers)."""

    values: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def parse_meminfo(text: str) -> MemInfo:
    """Return `Field: value [kB]` lines as bytes; the per-node form `Node 0 Field:` is accepted too."""
    out = MemInfo()
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields or len(fields) > 2:
            out.malformed += 1
            continue
        unit = fields[1] if len(fields) == 2 else ""
        words = name.split()
        # /sys/devices/system/node/nodeN/meminfo prefixes every line with "Node N".
        key = words[-1] if len(words) == 3 and words[0] == "Node" else name.strip()
        try:
            value = int(fields[0])
            scale = _UNITS[unit]
        except (ValueError, KeyError):
            out.malformed += 1
            continue
        if value < 0 or not key:
            out.malformed += 1
            continue
        out.values[key] = value * scale
    return out
