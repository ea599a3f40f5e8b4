"""Kernel activity: context switches, interrupts, softirqs by type, runnable and blocked tasks,
boot time, guest CPU time, scheduler run and wait time per CPU, entropy, hung tasks, watchdog.

Sources (proc(5)): {procfs}/stat (shared with the CPU collector through the tick cache),
softirqs, interrupts (per CPU only with `[instrumentation.kernel] interrupts_per_cpu = true`),
schedstat (Documentation/scheduler/sched-stats.rst), sys/kernel/random/{entropy_avail,poolsize},
sys/kernel/hung_task_detect_count (Linux 6.10+), sys/kernel/watchdog. A missing file disables only
its own figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER, CPU_MODE

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.kernel import SchedStat, Table, parse_cpu_table, parse_schedstat, parse_stat_totals
from ._linux.oneline import parse_int
from ._linux.stat import ProcStat, parse_stat
from ._optional import OptionalFiles
from ._source import require_readable

Obs = Callable[[CallbackOptions], Iterable[Observation]]
SOFTIRQ_TYPE = "sysops.softirq.type"
INTERRUPT = "sysops.interrupt.name"
TASK_STATE = "sysops.task.state"
# sysctl file under {procfs}/sys/kernel -> (metric, unit, description)
SYSCTLS = {
    "random/entropy_avail": (
        "sysops.kernel.entropy.available",
        "{bit}",
        "Entropy available to the kernel RNG",
    ),
    "random/poolsize": ("sysops.kernel.entropy.pool_size", "{bit}", "Size of the kernel RNG entropy pool"),
    "watchdog": ("sysops.kernel.watchdog.enabled", "1", "Lockup watchdog enabled (1) or not (0)"),
}
HUNG = "hung_task_detect_count"


@dataclass(slots=True)
class KernelSnapshot:
    """This tick's readings; None where the source could not be read."""

    stat: ProcStat | None = None
    totals: dict[str, int] | None = None
    softirqs: Table | None = None
    interrupts: Table | None = None
    schedstat: SchedStat | None = None
    sysctls: dict[str, int] | None = None
    hung: int | None = None


class KernelCollector(Collector[KernelSnapshot]):
    """`sysops.cpu.context_switches`, `.interrupts`, `.softirqs`, `.guest.time`, `.schedstat.*`,
    `sysops.kernel.*`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._stat = ctx.procfs / "stat"
        require_readable(self._stat)
        self._hz = os.sysconf("SC_CLK_TCK")
        self._optional = OptionalFiles(ctx)
        self._per_cpu = ctx.settings.instrumentation.kernel.interrupts_per_cpu

    def sample(self, now: float) -> KernelSnapshot:
        snap = KernelSnapshot()
        read, count, proc = self._optional.read, self.ctx.count_error, self.ctx.procfs
        if (text := read(self._stat)) is not None:
            snap.stat = parse_stat(text)  # malformed lines are the CPU collector's to count
            snap.totals, bad = parse_stat_totals(text)
            count("malformed_line", bad)
        if (text := read(proc / "softirqs")) is not None:
            snap.softirqs = parse_cpu_table(text)
            count("malformed_line", snap.softirqs.malformed)
        if self._per_cpu and (text := read(proc / "interrupts")) is not None:
            snap.interrupts = parse_cpu_table(text)
            count("malformed_line", snap.interrupts.malformed)
        # schedstat needs CONFIG_SCHEDSTATS; hung_task_detect_count a 6.10+ kernel: absence is normal.
        if (text := read(proc / "schedstat", counted=False)) is not None:
            snap.schedstat = parse_schedstat(text)
            count("malformed_line", snap.schedstat.malformed)
        snap.sysctls = {}
        for name in SYSCTLS:
            if (text := read(proc / "sys" / "kernel" / name, counted=name != "watchdog")) is not None:
                value = parse_int(text)
                if value is None:
                    count("malformed_line")
                else:
                    snap.sysctls[name] = value
        if (text := read(proc / "sys" / "kernel" / HUNG, counted=False)) is not None:
            snap.hung = parse_int(text)
            if snap.hung is None:
                count("malformed_line")
        return snap

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_counter(
            "sysops.cpu.context_switches", [self._counter("ctxt")], "{switch}", "Context switches since boot"
        )
        meter.create_observable_counter(
            "sysops.cpu.interrupts", [self._total("intr")], "{interrupt}", "Interrupts serviced since boot"
        )
        meter.create_observable_counter(
            "sysops.cpu.softirqs", [self._softirqs], "{softirq}", "Softirqs run since boot, by type"
        )
        meter.create_observable_up_down_counter(
            "sysops.kernel.tasks", [self._tasks], "{task}", "Tasks runnable and blocked on I/O now"
        )
        meter.create_observable_gauge(
            "sysops.kernel.boot_time",
            [self._counter("btime")],
            "s",
            "Boot time, seconds since the Unix epoch",
        )
        meter.create_observable_counter(
            "sysops.cpu.guest.time",
            [self._guest],
            "s",
            "Seconds each logical CPU ran virtual CPUs of guests (already part of user and nice)",
        )
        meter.create_observable_counter(
            "sysops.cpu.schedstat.running", [self._sched(0, 1e-9)], "s", "Time tasks ran on each CPU"
        )
        meter.create_observable_counter(
            "sysops.cpu.schedstat.waiting",
            [self._sched(1, 1e-9)],
            "s",
            "Time tasks waited to run on each CPU",
        )
        meter.create_observable_counter(
            "sysops.cpu.schedstat.timeslices",
            [self._sched(2, 1)],
            "{timeslice}",
            "Timeslices run on each CPU",
        )
        for name, (metric, unit, description) in SYSCTLS.items():
            meter.create_observable_gauge(metric, [self._sysctl(name)], unit, description)
        meter.create_observable_counter(
            "sysops.kernel.hung_tasks",
            [self._hung],
            "{task}",
            "Tasks detected hung (blocked beyond the timeout)",
        )
        # Reports only with `interrupts_per_cpu = true` (CPUs x interrupt lines series).
        meter.create_observable_counter(
            "sysops.cpu.interrupts.per_cpu", [self._interrupts], "{interrupt}", "Interrupts per line and CPU"
        )

    def _counter(self, key: str) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.stat is not None and key in snap.stat.counters:
                yield Observation(snap.stat.counters[key])

        return observe

    def _total(self, key: str) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.totals is not None and key in snap.totals:
                yield Observation(snap.totals[key])

        return observe

    def _softirqs(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.softirqs is not None:
            for name, counts in snap.softirqs.rows.items():
                yield Observation(sum(counts.values()), {SOFTIRQ_TYPE: name.lower()})

    def _tasks(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.stat is None:
            return
        for key, state in (("procs_running", "runnable"), ("procs_blocked", "blocked")):
            if key in snap.stat.counters:
                yield Observation(snap.stat.counters[key], {TASK_STATE: state})

    def _guest(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.stat is None:
            return
        for cpu, cols in snap.stat.cpus.items():
            if cpu < 0:
                continue
            for col in ("guest", "guest_nice"):
                if col in cols:
                    yield Observation(cols[col] / self._hz, {CPU_LOGICAL_NUMBER: cpu, CPU_MODE: col})

    def _sched(self, index: int, scale: float) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.schedstat is not None:
                for cpu, values in snap.schedstat.cpus.items():
                    yield Observation(
                        values[index] * scale if scale != 1 else values[index], {CPU_LOGICAL_NUMBER: cpu}
                    )

        return observe

    def _sysctl(self, name: str) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.sysctls is not None and name in snap.sysctls:
                yield Observation(snap.sysctls[name])

        return observe

    def _hung(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and self.snapshot.hung is not None:
            yield Observation(self.snapshot.hung)

    def _interrupts(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.interrupts is not None:
            for name, counts in snap.interrupts.rows.items():
                for cpu, n in counts.items():
                    yield Observation(n, {INTERRUPT: name, CPU_LOGICAL_NUMBER: cpu})
