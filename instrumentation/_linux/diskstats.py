"""Parse /proc/diskstats (Documentation/admin-guide/iostats.rst)."""

from __future__ import annotations

from dataclasses import dataclass, field

# iostats.rst: the fields after `major minor name`. Kernels before 4.18 give the first 11, 4.18
# adds the four discard fields, 5.5 the two flush fields.
FIELDS = (
    "reads",
    "reads_merged",
    "sectors_read",
    "read_ms",
    "writes",
    "writes_merged",
    "sectors_written",
    "write_ms",
    "in_progress",
    "io_ms",
    "weighted_io_ms",
    "discards",
    "discards_merged",
    "sectors_discarded",
    "discard_ms",
    "flushes",
    "flush_ms",
)
# iostats.rst: a sector here is always 512 bytes, whatever the device's own sector size.
SECTOR = 512


@dataclass(slots=True)
class DiskStats:
    """The counters of every block device by name."""

    devices: dict[str, dict[str, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_diskstats(text: str) -> DiskStats:
    """Return each device's counters by field name; count lines with too few or bad fields."""
    out = DiskStats()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 14:
                raise ValueError(line)
            int(parts[0]), int(parts[1])
            values = [int(v) for v in parts[3 : 3 + len(FIELDS)]]
            if any(v < 0 for v in values):
                raise ValueError(line)
        except ValueError:
            out.malformed += 1
            continue
        out.devices[parts[2]] = dict(zip(FIELDS, values, strict=False))
    return out
