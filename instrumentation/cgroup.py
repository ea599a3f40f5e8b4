"""Containers: cgroup v2 CPU, memory, I/O and pressure of the top-level groups (system.slice,
user.slice, machine.slice, kubepods*) and their direct children, bounded, from `{sysfs}/fs/cgroup`.

Only a cgroup that is a container (its path names a container id: `docker-<id>.scope`,
`cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, or a bare 64-hex directory)
is reported under the semantic conventions' `container.*` names, with `container.id`; any other
group (a systemd slice or service, a pod's slice) under the same metric renamed `sysops.cgroup.*`.

A hybrid host (cgroup v1 controllers, v2 mounted at `/sys/fs/cgroup/unified`) is read through the
unified mount: there only cpu.stat and the pressure files exist, so only those are reported.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_MODE
from opentelemetry.semconv._incubating.attributes.disk_attributes import DISK_IO_DIRECTION
from opentelemetry.semconv._incubating.attributes.system_attributes import SYSTEM_PAGING_FAULT_TYPE
from opentelemetry.semconv._incubating.metrics import container_metrics as cm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.cgroup import parse_flat_keyed, parse_io_stat, parse_single
from ._linux.pressure import Pressure, parse_pressure

_log = logging.getLogger(__name__)

# Names without a semantic convention (docs/metrics.md).
CGROUP_PATH = "sysops.cgroup.path"
PRESSURE_RESOURCE = "sysops.pressure.resource"
PRESSURE_TYPE = "sysops.pressure.kind"  # the same key as the host-wide PSI metrics
THROTTLED_TIME = "sysops.cgroup.cpu.throttled.time"
THROTTLED_PERIODS = "sysops.cgroup.cpu.throttled.periods"
MEMORY_LIMIT = "sysops.cgroup.memory.limit"
MEMORY_FILE = "sysops.cgroup.memory.file"
DISK_OPERATIONS = "sysops.cgroup.disk.operations"
PRESSURE_STALL = "sysops.cgroup.pressure.stall.time"

PRESSURE_RESOURCES = ("cpu", "memory", "io")
# Microseconds per second (dividing, not multiplying by 1e-6, keeps exact decimals exact).
_USEC = 1_000_000

Obs = Callable[[CallbackOptions], Iterable[Observation]]

CONTAINER_ID = "container.id"
_CONTAINER_SCOPE = re.compile(
    r"(?:^|[-/])(?:docker|cri-containerd|crio|libpod|containerd)-([0-9a-f]{12,64})\.scope$|(?:^|/)([0-9a-f]{64})$"
)


def container_id(path: str) -> str | None:
    """Return the container id a cgroup path names, or None for a group that is not a container."""
    match = _CONTAINER_SCOPE.search(path)
    if match is None:
        return None
    return match.group(1) or match.group(2)


class _ContainerSplit:
    """Create each `container.*` instrument twice: as itself for containers (with container.id)
    and as `sysops.cgroup.*` for every other group; other names pass through unchanged."""

    def __init__(self, churn: ChurningMeter) -> None:
        self._churn = churn

    def register(self, collector: CgroupCollector) -> None:
        collector.register_cgroup(self)

    def _make(self, kind: str, name: str, callbacks: list[Obs], unit: str, description: str) -> None:
        create = getattr(self._churn, kind)
        if not name.startswith("container."):
            create(name, callbacks, unit, description)
            return
        (callback,) = callbacks
        create(name, [_routed(callback, containers=True)], unit, description)
        create(
            "sysops.cgroup." + name.removeprefix("container."),
            [_routed(callback, containers=False)],
            unit,
            description,
        )

    def create_observable_counter(self, name: str, callbacks: list[Obs], unit: str, description: str) -> None:
        self._make("create_observable_counter", name, callbacks, unit, description)

    def create_observable_gauge(self, name: str, callbacks: list[Obs], unit: str, description: str) -> None:
        self._make("create_observable_gauge", name, callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: list[Obs], unit: str, description: str
    ) -> None:
        self._make("create_observable_up_down_counter", name, callbacks, unit, description)


def _routed(callback: Obs, containers: bool) -> Obs:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for obs in callback(options):
            attrs = dict(obs.attributes or {})
            cid = container_id(str(attrs.get(CGROUP_PATH, "")))
            if containers and cid is not None:
                yield Observation(obs.value, {**attrs, CONTAINER_ID: cid})
            elif not containers and cid is None:
                yield obs

    return observe


@dataclass(slots=True)
class GroupReading:
    """What one cgroup's interface files said this tick (absent files leave their part empty)."""

    cpu: dict[str, int] = field(default_factory=dict)
    memory_current: int | None = None
    memory_max: int | None = None
    memory_stat: dict[str, int] = field(default_factory=dict)
    io: dict[str, int] = field(default_factory=dict)
    pressure: dict[str, Pressure] = field(default_factory=dict)
    # CPUs used on average since the previous tick (None on a group's first tick).
    cpu_usage: float | None = None


@dataclass(slots=True)
class CgroupSnapshot:
    """Every reported group by its path under the hierarchy ("/", "/system.slice", ...)."""

    groups: dict[str, GroupReading] = field(default_factory=dict)


def find_hierarchy(sysfs: Path) -> tuple[Path, bool]:
    """Return the cgroup v2 mount under `sysfs` and whether it is a hybrid's unified mount.

    Raise CollectorUnavailableError on a cgroup v1-only host.
    """
    root = sysfs / "fs" / "cgroup"
    if (root / "cgroup.controllers").exists():
        return root, False
    unified = root / "unified"
    if (unified / "cgroup.controllers").exists():
        return unified, True
    raise CollectorUnavailableError(
        f"no cgroup v2 hierarchy at {root} or {unified} (cgroup v1 only); boot with "
        "systemd.unified_cgroup_hierarchy=1 for container metrics"
    )


def _subdirs(path: Path) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


class CgroupCollector(Collector[CgroupSnapshot]):
    """`container.*` (containers) or `sysops.cgroup.*` per cgroup, with a `sysops.cgroup.path` attribute."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._cfg = ctx.settings.instrumentation.cgroup
        self.root, self.hybrid = find_hierarchy(ctx.sysfs)
        if self.hybrid:
            _log.info(
                "cgroup: hybrid hierarchy, reading %s (memory and I/O controllers are v1: only CPU "
                "and pressure are reported)",
                self.root,
            )
        self._prev: dict[str, tuple[float, int]] = {}
        self._over_limit_logged = False

    def groups(self) -> list[str]:
        """List the groups to report this tick: the root, the top-level matches, their children."""
        cfg = self._cfg
        tops = [n for n in _subdirs(self.root) if any(fnmatchcase(n, p) for p in cfg.groups)]
        chosen = ["/"] if cfg.include_root else []
        chosen += [f"/{name}" for name in tops]
        if cfg.children:
            for name in tops:
                chosen += [f"/{name}/{child}" for child in _subdirs(self.root / name)]
        if len(chosen) > cfg.max_groups:
            if not self._over_limit_logged:
                self._over_limit_logged = True
                _log.info(
                    "cgroup: %d groups found, reporting the first %d; raise "
                    "SYSOPS_INSTRUMENTATION__CGROUP__MAX_GROUPS to see more",
                    len(chosen),
                    cfg.max_groups,
                )
            chosen = chosen[: cfg.max_groups]
        return chosen

    def sample(self, now: float) -> CgroupSnapshot:
        snap = CgroupSnapshot()
        prev, live = self._prev, {}
        for path in self.groups():
            reading = self._read_group(self.root / path.lstrip("/"))
            if reading is None:
                continue
            usage = reading.cpu.get("usage_usec")
            if usage is not None:
                live[path] = (now, usage)
                before = prev.get(path)
                if before is not None and now > before[0]:
                    reading.cpu_usage = max(0, usage - before[1]) / _USEC / (now - before[0])
            snap.groups[path] = reading
        self._prev = live
        return snap

    def _read(self, path: Path) -> str | None:
        """Return a file's text; None when it does not exist (not every controller is enabled)
        or cannot be read (counted: that item is skipped, the rest of the group reported)."""
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except PermissionError:
            self.ctx.count_error("permission")
        except OSError:
            self.ctx.count_error("read_error")
        return None

    def _read_group(self, directory: Path) -> GroupReading | None:
        """Read one group's files; None when the group vanished meanwhile."""
        if not directory.is_dir():
            return None
        out = GroupReading()
        malformed = 0
        if (text := self._read(directory / "cpu.stat")) is not None:
            parsed = parse_flat_keyed(text)
            out.cpu, malformed = parsed.values, malformed + parsed.malformed
        if (text := self._read(directory / "memory.current")) is not None:
            out.memory_current = parse_single(text)
            malformed += out.memory_current is None
        if (text := self._read(directory / "memory.max")) is not None:
            out.memory_max = parse_single(text)  # "max": no limit
        if (text := self._read(directory / "memory.stat")) is not None:
            parsed = parse_flat_keyed(text)
            out.memory_stat, malformed = parsed.values, malformed + parsed.malformed
        if (text := self._read(directory / "io.stat")) is not None:
            parsed = parse_io_stat(text)
            out.io, malformed = parsed.values, malformed + parsed.malformed
        for resource in PRESSURE_RESOURCES:
            if (text := self._read(directory / f"{resource}.pressure")) is not None:
                psi = parse_pressure(text)
                out.pressure[resource] = psi
                malformed += psi.malformed
        self.ctx.count_error("malformed_line", malformed)
        return out

    # -- instruments -------------------------------------------------------------------------

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        _ContainerSplit(churn).register(self)

    def register_cgroup(self, churn: _ContainerSplit) -> None:
        """Create the instruments (`container.*` ones through the split below)."""
        churn.create_observable_counter(
            cm.CONTAINER_CPU_TIME, [self._cpu_time], "s", "CPU time of the cgroup, user and system"
        )
        churn.create_observable_gauge(
            cm.CONTAINER_CPU_USAGE, [self._cpu_usage], "{cpu}", "CPUs used on average since the last tick"
        )
        churn.create_observable_counter(
            THROTTLED_TIME,
            [self._cpu_field("throttled_usec", _USEC)],
            "s",
            "Time the cgroup's tasks were throttled by its CPU quota",
        )
        churn.create_observable_counter(
            THROTTLED_PERIODS,
            [self._cpu_field("nr_throttled", 1)],
            "{period}",
            "Enforcement periods in which the cgroup was throttled",
        )
        churn.create_observable_up_down_counter(
            cm.CONTAINER_MEMORY_USAGE,
            [self._memory_usage],
            "By",
            "Memory charged to the cgroup (memory.current)",
        )
        churn.create_observable_up_down_counter(
            cm.CONTAINER_MEMORY_WORKING_SET,
            [self._working_set],
            "By",
            "memory.current less inactive page cache (inactive_file)",
        )
        churn.create_observable_up_down_counter(
            cm.CONTAINER_MEMORY_RSS, [self._stat_field("anon")], "By", "Anonymous memory (memory.stat anon)"
        )
        churn.create_observable_up_down_counter(
            MEMORY_FILE, [self._stat_field("file")], "By", "Page cache (memory.stat file)"
        )
        churn.create_observable_up_down_counter(
            MEMORY_LIMIT, [self._memory_limit], "By", "memory.max (absent when unlimited)"
        )
        churn.create_observable_counter(
            cm.CONTAINER_PAGING_FAULTS,
            [self._faults],
            "{fault}",
            "Page faults (memory.stat pgfault, pgmajfault)",
        )
        churn.create_observable_counter(
            cm.CONTAINER_DISK_IO, [self._io("rbytes", "wbytes")], "By", "Bytes read and written, all devices"
        )
        churn.create_observable_counter(
            DISK_OPERATIONS,
            [self._io("rios", "wios")],
            "{operation}",
            "Read and write operations, all devices",
        )
        churn.create_observable_counter(
            PRESSURE_STALL,
            [self._pressure],
            "s",
            "Time some or all of the cgroup's tasks stalled on CPU, memory or I/O (PSI total)",
        )

    def _each(self) -> Iterable[tuple[str, GroupReading]]:
        return self.snapshot.groups.items() if self.snapshot is not None else ()

    def _cpu_time(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            for mode in ("user", "system"):
                if (usec := g.cpu.get(f"{mode}_usec")) is not None:
                    yield Observation(usec / _USEC, {CGROUP_PATH: path, CPU_MODE: mode})

    def _cpu_usage(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            if g.cpu_usage is not None:
                yield Observation(g.cpu_usage, {CGROUP_PATH: path})

    def _cpu_field(self, key: str, divisor: int) -> Obs:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for path, g in self._each():
                if (value := g.cpu.get(key)) is not None:
                    yield Observation(value / divisor, {CGROUP_PATH: path})

        return callback

    def _stat_field(self, key: str) -> Obs:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for path, g in self._each():
                if (value := g.memory_stat.get(key)) is not None:
                    yield Observation(value, {CGROUP_PATH: path})

        return callback

    def _memory_usage(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            if g.memory_current is not None:
                yield Observation(g.memory_current, {CGROUP_PATH: path})

    def _working_set(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            inactive = g.memory_stat.get("inactive_file")
            if g.memory_current is not None and inactive is not None:
                yield Observation(max(0, g.memory_current - inactive), {CGROUP_PATH: path})

    def _memory_limit(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            if g.memory_max is not None:
                yield Observation(g.memory_max, {CGROUP_PATH: path})

    def _faults(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            total, major = g.memory_stat.get("pgfault"), g.memory_stat.get("pgmajfault")
            if total is not None and major is not None:
                minor = max(0, total - major)
                yield Observation(minor, {CGROUP_PATH: path, SYSTEM_PAGING_FAULT_TYPE: "minor"})
                yield Observation(major, {CGROUP_PATH: path, SYSTEM_PAGING_FAULT_TYPE: "major"})

    def _io(self, read_key: str, write_key: str) -> Obs:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for path, g in self._each():
                if g.io:
                    yield Observation(g.io[read_key], {CGROUP_PATH: path, DISK_IO_DIRECTION: "read"})
                    yield Observation(g.io[write_key], {CGROUP_PATH: path, DISK_IO_DIRECTION: "write"})

        return callback

    def _pressure(self, _: CallbackOptions) -> Iterable[Observation]:
        for path, g in self._each():
            for resource, psi in g.pressure.items():
                for kind, values in psi.lines.items():
                    attrs = {CGROUP_PATH: path, PRESSURE_RESOURCE: resource, PRESSURE_TYPE: kind}
                    yield Observation(values.total_us / _USEC, attrs)
