"""Parse the memory zone files (proc(5)): /proc/buddyinfo, /proc/zoneinfo; and the per-node
numastat files (Documentation/admin-guide/numastat.rst)."""

from __future__ import annotations

from dataclasses import dataclass, field

ZONE_FIELDS = ("free", "min", "low", "high", "managed")


@dataclass(slots=True)
class Zones:
    """(node, zone) -> values: free blocks per order (buddyinfo) or pages per field (zoneinfo)."""

    zones: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_buddyinfo(text: str) -> Zones:
    """Return (node, zone) -> order (as a string, "0".."10") -> free blocks."""
    out = Zones()
    for line in text.splitlines():
        if not line.strip():
            continue
        head, sep, rest = line.partition(", zone")
        words = rest.split()
        try:
            if not sep or not head.startswith("Node ") or len(words) < 2:
                raise ValueError(line)
            node = int(head[5:])
            counts = [int(w) for w in words[1:]]
        except ValueError:
            out.malformed += 1
            continue
        out.zones[(node, words[0])] = {str(order): n for order, n in enumerate(counts)}
    return out


def parse_zoneinfo(text: str) -> Zones:
    """Return (node, zone) -> free pages and the min, low, high watermarks and managed pages."""
    out = Zones()
    current: dict[str, int] | None = None
    for line in text.splitlines():
        if line.startswith("Node "):
            head, sep, zone = line.partition(", zone")
            try:
                if not sep or not zone.strip():
                    raise ValueError(line)
                current = out.zones.setdefault((int(head[5:]), zone.strip()), {})
            except ValueError:
                out.malformed += 1
                current = None
            continue
        if current is None:
            continue
        words = line.split()
        if len(words) == 3 and words[:2] == ["pages", "free"]:
            words = ["free", words[2]]
        if len(words) == 2 and words[0] in ZONE_FIELDS and words[0] not in current:
            try:
                current[words[0]] = int(words[1])
            except ValueError:
                out.malformed += 1
    return out
