"""Parse /proc/swaps (proc(5)): a header, then `Filename Type Size Used Priority` in KiB."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class SwapArea:
    """One swap device or file, sizes in bytes."""

    device: str
    kind: str
    size: int
    used: int


@dataclass(slots=True)
class Swaps:
    """The swap areas in use."""

    areas: list[SwapArea] = field(default_factory=list)
    malformed: int = 0


def _unescape(path: str) -> str:
    # The kernel writes space, tab, newline and backslash in paths as octal escapes (\040).
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def parse_swaps(text: str) -> Swaps:
    """Return the swap areas; the header line is skipped and malformed lines counted."""
    out = Swaps()
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] == "Filename":
            continue
        try:
            if len(parts) != 5:
                raise ValueError(line)
            size, used = int(parts[2]), int(parts[3])
            int(parts[4])
            if size < 0 or used < 0:
                raise ValueError(line)
        except ValueError:
            out.malformed += 1
            continue
        out.areas.append(SwapArea(_unescape(parts[0]), parts[1], size * 1024, used * 1024))
    return out
