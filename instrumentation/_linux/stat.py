"""Parse /proc/stat (proc(5))."""

from __future__ import annotations

from dataclasses import dataclass, field

# proc(5): the order of the time columns of the "cpu" lines.
CPU_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


@dataclass(slots=True)
class ProcStat:
    """The parts of /proc/stat: per-CPU times in ticks, and the scalar counters."""

    # cpu number (-1 for the "cpu" total line) -> column -> ticks
    cpus: dict[int, dict[str, int]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


_SCALARS = ("ctxt", "btime", "processes", "procs_running", "procs_blocked")


def parse_stat(text: str) -> ProcStat:
    """Return the CPU times and counters of /proc/stat; count lines that do not parse."""
    out = ProcStat()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        try:
            if key.startswith("cpu"):
                number = -1 if key == "cpu" else int(key[3:])
                if number < -1 or len(parts) < 5:
                    raise ValueError(line)
                values = [int(v) for v in parts[1 : 1 + len(CPU_COLUMNS)]]
                if any(v < 0 for v in values):
                    raise ValueError(line)
                out.cpus[number] = dict(zip(CPU_COLUMNS, values, strict=False))
            elif key in _SCALARS:
                if len(parts) != 2:
                    raise ValueError(line)
                out.counters[key] = int(parts[1])
        except ValueError:
            out.malformed += 1
    return out
