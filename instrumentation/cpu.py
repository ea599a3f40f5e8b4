"""CPU: time and utilization by mode and logical CPU, from /proc/stat (proc(5))."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER, CPU_MODE
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.stat import ProcStat, parse_stat

# /proc/stat column -> the semantic conventions' cpu.mode. guest and guest_nice are already
# included in user and nice (proc(5)), so they are not reported again.
MODES = {
    "user": "user",
    "nice": "nice",
    "system": "system",
    "idle": "idle",
    "iowait": "iowait",
    "irq": "interrupt",
    "softirq": "softirq",
    "steal": "steal",
}


@dataclass(slots=True)
class CpuSnapshot:
    """One reading of /proc/stat and the utilization since the previous one."""

    stat: ProcStat
    # cpu -> cpu.mode -> fraction of the interval (None on the first tick)
    utilization: dict[int, dict[str, float]] | None


def utilization(previous: ProcStat, current: ProcStat) -> dict[int, dict[str, float]]:
    """Return the share of each mode in the ticks elapsed between two readings, per CPU."""
    out: dict[int, dict[str, float]] = {}
    for cpu, now in current.cpus.items():
        before = previous.cpus.get(cpu)
        if before is None:
            continue
        deltas = {MODES[col]: max(0, now.get(col, 0) - before.get(col, 0)) for col in MODES}
        total = sum(deltas.values())
        if total > 0:
            out[cpu] = {mode: delta / total for mode, delta in deltas.items()}
    return out


class CpuCollector(Collector[CpuSnapshot]):
    """`system.cpu.time`, `system.cpu.utilization`, `system.cpu.logical.count`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "stat"
        if not self._path.exists():
            raise CollectorUnavailableError(f"{self._path} does not exist")
        self._hz = os.sysconf("SC_CLK_TCK")
        self._previous: ProcStat | None = None

    def sample(self, now: float) -> CpuSnapshot:
        stat = parse_stat(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", stat.malformed)
        util = None if self._previous is None else utilization(self._previous, stat)
        self._previous = stat
        return CpuSnapshot(stat, util)

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_counter(
            sm.SYSTEM_CPU_TIME, [self._times], "s", "Seconds each logical CPU spent in each mode"
        )
        meter.create_observable_gauge(
            sm.SYSTEM_CPU_UTILIZATION,
            [self._utilization],
            "1",
            "Share of each logical CPU's time spent in each mode since the last tick",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_CPU_LOGICAL_COUNT, [self._count], "{cpu}", "Logical CPUs online"
        )

    def _times(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        for cpu, cols in snap.stat.cpus.items():
            if cpu < 0:
                continue
            for col, mode in MODES.items():
                if col in cols:
                    yield Observation(cols[col] / self._hz, {CPU_MODE: mode, CPU_LOGICAL_NUMBER: cpu})

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.utilization is None:
            return
        for cpu, modes in snap.utilization.items():
            if cpu < 0:
                continue
            for mode, share in modes.items():
                yield Observation(share, {CPU_MODE: mode, CPU_LOGICAL_NUMBER: cpu})

    def _count(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None:
            yield Observation(sum(1 for cpu in snap.stat.cpus if cpu >= 0))
