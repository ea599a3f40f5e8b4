"""Small readers shared by the inventory sections: a missing or unreadable file is None, never an error."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Roots:
    """Where the host's procfs, sysfs and root filesystem are mounted (a container sees them at /host)."""

    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    host_root: Path = Path("/")

    def host(self, absolute: str) -> Path:
        """Return `absolute` (e.g. /etc/os-release) under the host root."""
        return self.host_root / absolute.lstrip("/")


def read(path: Path) -> str | None:
    """Return the stripped text of a file, or None when it is absent, unreadable or not text."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        # PermissionError (root-only DMI serials), EINVAL (speed of a down link), ENOENT.
        return None


def read_int(path: Path) -> int | None:
    """Return a file holding one integer, or None."""
    text = read(path)
    if text is None:
        return None
    try:
        return int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def link_name(path: Path) -> str | None:
    """Return the last component of a symlink's target (e.g. a NIC's driver), or None."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


_NATURAL = re.compile(r"(\d+)")


def natural_key(name: str) -> list[int | str]:
    """Sort key so cpu10 comes after cpu9."""
    return [int(p) if p.isdigit() else p for p in _NATURAL.split(name)]


def children(path: Path, pattern: str) -> Iterator[Path]:
    """Yield the entries of a directory matching a glob, in natural order; nothing when it is absent."""
    try:
        entries = list(path.glob(pattern))
    except OSError:
        return
    yield from sorted(entries, key=lambda p: natural_key(p.name))


def parse_cpu_list(text: str | None) -> list[int]:
    """Expand a kernel CPU list ("0-3,8,10-11") into numbers; malformed parts are skipped."""
    out: list[int] = []
    if not text:
        return out
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        try:
            if sep:
                out.extend(range(int(lo), int(hi) + 1))
            elif lo:
                out.append(int(lo))
        except ValueError:
            continue
    return out


def parse_size(text: str | None) -> int | None:
    """Return a sysfs cache size ("32K", "1024K", "8M") in bytes."""
    if not text:
        return None
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    scale = units.get(text[-1].upper(), 1)
    digits = text[:-1] if text[-1].upper() in units else text
    try:
        return int(digits) * scale
    except ValueError:
        return None
