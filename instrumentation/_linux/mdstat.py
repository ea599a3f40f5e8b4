"""Parse /proc/mdstat, the Linux software RAID status (md(4), Documentation/admin-guide/md.rst).

An array is a `mdN : state [(read-only)] level member[n](F|S|W|R) ...` line followed by indented
lines: `blocks ... [raid_disks/active] [UU_]` and, while it syncs,
`[=>...]  recovery = 12.6% (done/total) finish=... speed=...`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_MEMBER = re.compile(r"^(?P<name>[^\[\s]+)\[\d+\](?P<flags>(\([A-Z]\))*)$")
_COUNTS = re.compile(r"\[(\d+)/(\d+)\]")
_SYNC = re.compile(r"\b(recovery|resync|reshape|check|repair)\s*=\s*([\d.]+)%")
_DELAYED = re.compile(r"\b(resync|recovery|reshape|check)\s*=\s*(DELAYED|PENDING)")


@dataclass(slots=True)
class Array:
    """One md array."""

    state: str  # "active", "inactive" (md(4): also "active (auto-read-only)" -> "active")
    level: str | None = None  # raid1, raid5, ...; None while inactive
    raid_disks: int | None = None  # disks the array is made of ([n/m]: n)
    active: int | None = None  # of them in sync ([n/m]: m)
    failed: int = 0  # members marked (F)
    spare: int = 0  # members marked (S)
    members: int = 0
    blocks: int | None = None  # size in 1 KiB blocks
    sync_action: str | None = None  # recovery, resync, reshape, check, repair
    sync_progress: float | None = None  # 0..1

    @property
    def degraded(self) -> bool:
        """Fewer members in sync than the array is made of."""
        return self.raid_disks is not None and self.active is not None and self.active < self.raid_disks


@dataclass(slots=True)
class MdStat:
    """Arrays by name, and the lines that did not parse."""

    arrays: dict[str, Array] = field(default_factory=dict)
    malformed: int = 0


def _header(words: list[str]) -> Array:
    # words: after "mdN :" -> state [ (read-only) | (auto-read-only) ] [level] members...
    state = words[0]
    rest = [w for w in words[1:] if not (w.startswith("(") and w.endswith(")"))]
    array = Array(state=state)
    if rest and not _MEMBER.match(rest[0]):
        array.level = rest[0]
        rest = rest[1:]
    for word in rest:
        match = _MEMBER.match(word)
        if match is None:
            raise ValueError(word)
        array.members += 1
        flags = match.group("flags")
        if "(F)" in flags:
            array.failed += 1
        elif "(S)" in flags:
            array.spare += 1
    return array


def parse_mdstat(text: str) -> MdStat:
    """Return every array of /proc/mdstat; a broken array line is counted and its details skipped."""
    out = MdStat()
    current: Array | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(("Personalities", "unused devices", "read_ahead")):
            current = None
            continue
        if not line[0].isspace():
            name, sep, rest = line.partition(" : ")
            try:
                if not sep or not rest.split():
                    raise ValueError(line)
                current = _header(rest.split())
            except ValueError:
                out.malformed += 1
                current = None
                continue
            out.arrays[name.strip()] = current
            continue
        if current is None:
            continue
        words = line.split()
        if "blocks" in words:
            try:
                current.blocks = int(words[0])
            except ValueError:
                out.malformed += 1
            counts = _COUNTS.search(line)
            if counts is not None:
                current.raid_disks, current.active = int(counts.group(1)), int(counts.group(2))
        sync = _SYNC.search(line)
        if sync is not None:
            current.sync_action, current.sync_progress = sync.group(1), min(1.0, float(sync.group(2)) / 100)
        elif (delayed := _DELAYED.search(line)) is not None:
            current.sync_action, current.sync_progress = delayed.group(1), 0.0
    return out
