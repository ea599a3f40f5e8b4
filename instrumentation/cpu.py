"""CPU: time, utilization, counts, frequency, load average and per-socket use.

Sources: /proc/stat and /proc/loadavg (proc(5)), the sysfs CPU topology and cpufreq attributes
(Documentation/ABI/stable/sysfs-devices-system-cpu, .../testing/sysfs-devices-system-cpu), and
/proc/cpuinfo's `cpu MHz` where cpufreq is absent (virtual machines).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER, CPU_MODE
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.cpuinfo import CpuInfo, parse_cpuinfo
from ._linux.oneline import LoadAvg, parse_int, parse_loadavg
from ._linux.stat import ProcStat, parse_stat
from ._source import require_readable

_log = logging.getLogger(__name__)

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
# Modes in which a CPU does no work: sysops.cpu.busy is everything else.
IDLE_MODES = ("idle", "iowait")

# The OpenTelemetry Collector's hostmetrics names (no semantic convention exists yet).
LOAD_AVERAGE = {
    "1m": "system.cpu.load_average.1m",
    "5m": "system.cpu.load_average.5m",
    "15m": "system.cpu.load_average.15m",
}
SOCKET_UTILIZATION = "sysops.cpu.socket.utilization"
SOCKET = "sysops.cpu.socket"
BUSY = "sysops.cpu.busy"
# Which file a CPU's system.cpu.frequency was read from: "cpufreq" or "cpuinfo".
FREQUENCY_SOURCE = "sysops.cpu.frequency.source"


@dataclass(frozen=True, slots=True)
class Topology:
    """Each logical CPU's socket and core, from sysfs (or /proc/cpuinfo)."""

    sockets: dict[int, int]
    physical_cores: int | None
    # Some CPU has a cpufreq directory (virtual machines usually have none: /proc/cpuinfo then).
    cpufreq: bool = False


@dataclass(slots=True)
class CpuSnapshot:
    """One reading of the CPU sources and the shares since the previous one."""

    stat: ProcStat
    # cpu -> cpu.mode -> fraction of the interval (None on the first tick)
    utilization: dict[int, dict[str, float]] | None
    busy: float | None = None
    sockets: dict[int, dict[str, float]] | None = None
    load: LoadAvg | None = None
    frequency: dict[int, float] | None = None  # Hz
    # cpu -> where its frequency came from: "cpufreq" (scaling_cur_freq) or "cpuinfo" (cpu MHz)
    frequency_source: dict[int, str] = field(default_factory=dict)
    physical_cores: int | None = None


def _deltas(before: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    return {MODES[col]: max(0, now.get(col, 0) - before.get(col, 0)) for col in MODES}


def _shares(deltas: dict[str, int]) -> dict[str, float] | None:
    total = sum(deltas.values())
    return {mode: d / total for mode, d in deltas.items()} if total > 0 else None


def utilization(previous: ProcStat, current: ProcStat) -> dict[int, dict[str, float]]:
    """Return the share of each mode in the ticks elapsed between two readings, per CPU."""
    out: dict[int, dict[str, float]] = {}
    for cpu, now in current.cpus.items():
        before = previous.cpus.get(cpu)
        if before is None:
            continue
        shares = _shares(_deltas(before, now))
        if shares is not None:
            out[cpu] = shares
    return out


def busy(previous: ProcStat, current: ProcStat) -> float | None:
    """Return the share of non-idle time (all but idle and iowait) on the `cpu` total line."""
    before, now = previous.cpus.get(-1), current.cpus.get(-1)
    if before is None or now is None:
        return None
    shares = _shares(_deltas(before, now))
    if shares is None:
        return None
    return max(0.0, 1.0 - sum(shares[m] for m in IDLE_MODES))


def socket_utilization(
    previous: ProcStat, current: ProcStat, sockets: dict[int, int]
) -> dict[int, dict[str, float]]:
    """Return the share of each mode per socket: the per-CPU tick deltas summed over its CPUs."""
    totals: dict[int, dict[str, int]] = {}
    for cpu, now in current.cpus.items():
        before = previous.cpus.get(cpu)
        if cpu < 0 or before is None or cpu not in sockets:
            continue
        acc = totals.setdefault(sockets[cpu], dict.fromkeys(MODES.values(), 0))
        for mode, delta in _deltas(before, now).items():
            acc[mode] += delta
    out = {}
    for socket, deltas in totals.items():
        shares = _shares(deltas)
        if shares is not None:
            out[socket] = shares
    return out


class CpuCollector(Collector[CpuSnapshot]):
    """`system.cpu.*` (time, utilization, counts, frequency, load average) and `sysops.cpu.*`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "stat"
        require_readable(self._path)
        self._hz = os.sysconf("SC_CLK_TCK")
        self._cpu_dir = ctx.sysfs / "devices" / "system" / "cpu"
        self._previous: ProcStat | None = None
        # The topology only changes with CPU hotplug: re-read it when the set of CPUs changes.
        self._topology: Topology | None = None
        self._topology_cpus: frozenset[int] = frozenset()
        self._warned: set[str] = set()

    @property
    def sockets(self) -> dict[int, int]:
        """Return each logical CPU's socket as of the last sample (the inventory reads it)."""
        return dict(self._topology.sockets) if self._topology is not None else {}

    def sample(self, now: float) -> CpuSnapshot:
        stat = parse_stat(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", stat.malformed)
        cpus = frozenset(c for c in stat.cpus if c >= 0)
        if self._topology is None or cpus != self._topology_cpus:
            self._topology, self._topology_cpus = self._read_topology(cpus), cpus
        snap = CpuSnapshot(stat, None, physical_cores=self._topology.physical_cores)
        if self._previous is not None:
            snap.utilization = utilization(self._previous, stat)
            snap.busy = busy(self._previous, stat)
            if self._topology.sockets:
                snap.sockets = socket_utilization(self._previous, stat, self._topology.sockets)
        self._previous = stat
        snap.load = self._read_loadavg()
        snap.frequency = self._read_frequency(
            cpus if self._topology.cpufreq else frozenset(), cpus, snap.frequency_source
        )
        return snap

    # -- sources ---------------------------------------------------------------------------------

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning(msg, *args)

    def _read_value(self, path: Path) -> int | None:
        """Return one sysfs integer; None when absent, unreadable (logged once) or malformed (counted)."""
        try:
            text = path.read_text(encoding="ascii", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._warn_once(str(path.parent), "cannot read %s: %s", path, exc.strerror)
            return None
        value = parse_int(text)
        if value is None:
            self.ctx.count_error("malformed_line")
        return value

    def _read_cpuinfo(self) -> CpuInfo:
        """Return /proc/cpuinfo parsed (empty when unreadable); read once per tick via the tick cache."""
        try:
            text = self.ctx.files.read_text(self.ctx.procfs / "cpuinfo")
        except OSError:
            return CpuInfo()
        info = parse_cpuinfo(text)
        self.ctx.count_error("malformed_line", info.malformed)
        return info

    def _read_topology(self, cpus: frozenset[int]) -> Topology:
        sockets: dict[int, int] = {}
        cores: set[tuple[int, int]] = set()
        for cpu in sorted(cpus):
            topo = self._cpu_dir / f"cpu{cpu}" / "topology"
            package = self._read_value(topo / "physical_package_id")
            core = self._read_value(topo / "core_id")
            if package is not None:
                sockets[cpu] = package
                if core is not None:
                    cores.add((package, core))
        if not sockets:  # no sysfs topology (some containers): /proc/cpuinfo's ids
            ids = self._read_cpuinfo().cores
            sockets = {cpu: pc[0] for cpu, pc in ids.items() if cpu in cpus}
            cores = {pc for cpu, pc in ids.items() if cpu in cpus}
        cpufreq = any((self._cpu_dir / f"cpu{cpu}" / "cpufreq").is_dir() for cpu in cpus)
        return Topology(sockets, len(cores) or None, cpufreq)

    def _read_loadavg(self) -> LoadAvg | None:
        path = self.ctx.procfs / "loadavg"
        try:
            text = self.ctx.files.read_text(path)
        except OSError as exc:
            self.ctx.count_error("missing_file" if isinstance(exc, FileNotFoundError) else "read_error")
            self._warn_once("loadavg", "load average skipped: cannot read %s: %s", path, exc.strerror)
            return None
        load = parse_loadavg(text)
        if load is None:
            self.ctx.count_error("malformed_line")
        return load

    def _read_frequency(
        self, with_cpufreq: frozenset[int], cpus: frozenset[int], source: dict[int, str]
    ) -> dict[int, float]:
        """Return Hz per CPU: cpufreq's scaling_cur_freq (kHz), else /proc/cpuinfo `cpu MHz`;
        record in `source` which one each CPU's figure came from."""
        out: dict[int, float] = {}
        for cpu in sorted(with_cpufreq):
            khz = self._read_value(self._cpu_dir / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq")
            if khz is not None and khz >= 0:
                out[cpu] = khz * 1e3
                source[cpu] = "cpufreq"
        missing = cpus - out.keys()
        if missing:
            mhz = self._read_cpuinfo().mhz
            for cpu in missing & mhz.keys():
                out[cpu] = mhz[cpu] * 1e6
                source[cpu] = "cpuinfo"
        return out

    # -- instruments -----------------------------------------------------------------------------

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
        meter.create_observable_up_down_counter(
            sm.SYSTEM_CPU_PHYSICAL_COUNT, [self._physical], "{cpu}", "Physical cores (distinct socket, core)"
        )
        meter.create_observable_gauge(
            sm.SYSTEM_CPU_FREQUENCY, [self._frequency], "Hz", "Current clock of each logical CPU"
        )
        for window, name in LOAD_AVERAGE.items():
            meter.create_observable_gauge(
                name, [self._load_callback(window)], "{thread}", f"Run-queue length averaged over {window}"
            )
        meter.create_observable_gauge(
            SOCKET_UTILIZATION,
            [self._socket_utilization],
            "1",
            "Share of each socket's CPU time spent in each mode since the last tick",
        )
        meter.create_observable_gauge(
            BUSY, [self._busy], "1", "Share of all CPUs' time not idle (nor iowait) since the last tick"
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

    def _physical(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.physical_cores is not None:
            yield Observation(snap.physical_cores)

    def _frequency(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.frequency is None:
            return
        for cpu, hz in snap.frequency.items():
            yield Observation(hz, {CPU_LOGICAL_NUMBER: cpu, FREQUENCY_SOURCE: snap.frequency_source[cpu]})

    def _load_callback(self, window: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        attr = {"1m": "m1", "5m": "m5", "15m": "m15"}[window]

        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.load is not None:
                yield Observation(getattr(snap.load, attr))

        return observe

    def _socket_utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        for socket, modes in ({} if snap is None or snap.sockets is None else snap.sockets).items():
            for mode, share in modes.items():
                yield Observation(share, {SOCKET: socket, CPU_MODE: mode})

    def _busy(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.busy is not None:
            yield Observation(snap.busy)
