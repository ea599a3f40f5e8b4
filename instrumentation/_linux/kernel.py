"""Parse kernel activity files (proc(5)): /proc/stat's intr and softirq totals, /proc/softirqs,
/proc/interrupts, /proc/schedstat (Documentation/scheduler/sched-stats.rst)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Table:
    """Rows of a per-CPU table: row name -> cpu -> count; `labels` names the hardware IRQ rows."""

    rows: dict[str, dict[int, int]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    malformed: int = 0


def parse_stat_totals(text: str) -> tuple[dict[str, int], int]:
    """Return the first (total) column of /proc/stat's `intr` and `softirq` lines, and bad lines."""
    out: dict[str, int] = {}
    malformed = 0
    for line in text.splitlines():
        if line.startswith(("intr ", "softirq ")):
            parts = line.split()
            try:
                out[parts[0]] = int(parts[1])
            except (IndexError, ValueError):
                malformed += 1
    return out, malformed


def parse_cpu_table(text: str) -> Table:
    """Parse /proc/softirqs or /proc/interrupts: a header of CPUn names, then `NAME: n n ... [label]`."""
    out = Table()
    lines = text.splitlines()
    if not lines:
        return out
    cpus = []
    for word in lines[0].split():
        if not word.startswith("CPU") or not word[3:].isdigit():
            out.malformed += 1
            return out
        cpus.append(int(word[3:]))
    for line in lines[1:]:
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not sep or not name:
            if line.strip():
                out.malformed += 1
            continue
        if name in ("ERR", "MIS"):  # /proc/interrupts' global error counts, not per CPU
            continue
        words = rest.split()
        counts: dict[int, int] = {}
        for cpu, word in zip(cpus, words, strict=False):
            if not word.isdigit():
                break
            counts[cpu] = int(word)
        if not counts:
            out.malformed += 1
            continue
        out.rows[name] = counts
        label = " ".join(words[len(counts) :])
        if label:
            out.labels[name] = label
    return out


@dataclass(slots=True)
class SchedStat:
    """Per-CPU scheduler figures: cpu -> (running ns, waiting ns, timeslices)."""

    cpus: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_schedstat(text: str) -> SchedStat:
    """Return the last three fields of each `cpuN` line (sched-stats.rst, version 15)."""
    out = SchedStat()
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu"):
            continue
        try:
            cpu = int(parts[0][3:])
            if len(parts) < 10:
                raise ValueError(line)
            running, waiting, slices = (int(v) for v in parts[7:10])
        except ValueError:
            out.malformed += 1
            continue
        out.cpus[cpu] = (running, waiting, slices)
    return out
