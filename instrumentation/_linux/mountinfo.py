"""Parse /proc/PID/mountinfo (proc(5))."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount: its device number, the subtree mounted, where, how, and what."""

    mount_id: int
    device: str  # "major:minor"
    root: str
    mountpoint: str
    options: tuple[str, ...]
    fstype: str
    source: str

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@dataclass(slots=True)
class MountInfo:
    """The mounts in the order the kernel lists them."""

    mounts: list[Mount] = field(default_factory=list)
    malformed: int = 0


def _unescape(text: str) -> str:
    # proc(5): space, tab, newline and backslash in paths are written as octal escapes (\040).
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> MountInfo:
    """Return every mount; count lines without the ` - ` separator or with bad fields."""
    out = MountInfo()
    for line in text.splitlines():
        if not line.strip():
            continue
        # proc(5): id parent major:minor root mountpoint options [optional...] - type source superoptions
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        try:
            if not sep or len(fields) < 6 or len(rest) < 2:
                raise ValueError(line)
            mount_id = int(fields[0])
            int(fields[1])
            major, colon, minor = fields[2].partition(":")
            if not colon:
                raise ValueError(line)
            int(major), int(minor)
        except ValueError:
            out.malformed += 1
            continue
        out.mounts.append(
            Mount(
                mount_id=mount_id,
                device=fields[2],
                root=_unescape(fields[3]),
                mountpoint=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                fstype=rest[0],
                source=_unescape(rest[1]),
            )
        )
    return out
