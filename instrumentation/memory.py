"""Memory: usage and utilization by state, limit, Linux available, slab, shared, hugepages, and
per-NUMA-node usage.

Sources: /proc/meminfo (proc(5)) and /sys/devices/system/node/nodeN/meminfo
(Documentation/ABI/stable/sysfs-devices-node).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_MEMORY_LINUX_HUGEPAGES_STATE,
    SYSTEM_MEMORY_LINUX_SLAB_STATE,
    SYSTEM_MEMORY_STATE,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.meminfo import MemInfo, parse_meminfo
from ._source import require_readable

_log = logging.getLogger(__name__)

NUMA_USAGE = "sysops.memory.numa.usage"
NUMA_LIMIT = "sysops.memory.numa.limit"
NUMA_NODE = "sysops.numa.node"

_NODE_DIR = re.compile(r"^node(\d+)$")


def memory_states(info: MemInfo) -> dict[str, int] | None:
    """Split MemTotal into the semantic conventions' states: used, free, buffers, cached.

    `used` is MemTotal - MemAvailable, as the semantic conventions define it (and `free(1)`'s
    "used" column): memory that cannot be had back without swapping. `cached` counts page cache plus
    reclaimable slab. Part of the cache is not available either (shmem, dirty pages), so the states
    may sum to more than MemTotal; `system.memory.limit` is the total. Kernels without MemAvailable
    (before 3.14) get the old split, total - free - buffers - cached.
    """
    v = info.values
    try:
        total, free = v["MemTotal"], v["MemFree"]
    except KeyError:
        return None
    buffers = v.get("Buffers", 0)
    cached = v.get("Cached", 0) + v.get("SReclaimable", 0)
    available = v.get("MemAvailable")
    if available is not None:
        return {"used": max(total - available, 0), "free": free, "buffers": buffers, "cached": cached}
    used = total - free - buffers - cached
    if used < 0:  # the counters are read non-atomically; fold the excess into cached
        cached, used = cached + used, 0
    return {"used": used, "free": free, "buffers": buffers, "cached": cached}


def node_states(info: MemInfo) -> dict[str, int] | None:
    """Split a node's MemTotal into used, free and cached (FilePages + SReclaimable).

    A node's meminfo has no Buffers or Cached line: its FilePages holds both, so the states sum
    to the node's MemTotal as the host-wide ones sum to the host's.
    """
    v = info.values
    try:
        total, free = v["MemTotal"], v["MemFree"]
    except KeyError:
        return None
    cached = v.get("FilePages", 0) + v.get("SReclaimable", 0)
    used = total - free - cached
    if used < 0:
        cached, used = cached + used, 0
    return {"used": used, "free": free, "cached": cached}


@dataclass(slots=True)
class MemorySnapshot:
    """/proc/meminfo and each NUMA node's meminfo."""

    info: MemInfo
    nodes: dict[int, MemInfo] = field(default_factory=dict)


class MemoryCollector(Collector[MemorySnapshot]):
    """`system.memory.*` (usage, utilization, limit, Linux available, slab, shared, hugepages) and
    `sysops.memory.numa.*`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "meminfo"
        require_readable(self._path)
        self._node_root = ctx.sysfs / "devices" / "system" / "node"
        self._numa_off = False

    def sample(self, now: float) -> MemorySnapshot:
        info = parse_meminfo(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", info.malformed)
        return MemorySnapshot(info, self._read_nodes())

    def _read_nodes(self) -> dict[int, MemInfo]:
        if self._numa_off:
            return {}
        try:
            entries = [(m, p) for p in self._node_root.iterdir() if (m := _NODE_DIR.match(p.name))]
        except FileNotFoundError:
            self._numa_off = True  # a kernel without NUMA support: no node directory at all
            return {}
        except OSError as exc:
            self._numa_off = True
            _log.warning("NUMA memory disabled: cannot list %s: %s", self._node_root, exc.strerror)
            return {}
        nodes: dict[int, MemInfo] = {}
        for match, path in entries:
            try:
                text = self.ctx.files.read_text(path / "meminfo")
            except OSError:
                continue  # a node going offline between listing and reading
            info = parse_meminfo(text)
            self.ctx.count_error("malformed_line", info.malformed)
            nodes[int(match.group(1))] = info
        return nodes

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_USAGE, [self._usage], "By", "Memory in use, by state"
        )
        meter.create_observable_gauge(
            sm.SYSTEM_MEMORY_UTILIZATION, [self._utilization], "1", "Share of memory in each state"
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LIMIT, [self._limit], "By", "Total memory (MemTotal)"
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_AVAILABLE,
            [self._available],
            "By",
            "Memory available for new work without swapping (MemAvailable)",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_SLAB_USAGE, [self._slab], "By", "Kernel slab memory, by reclaimability"
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_SHARED, [self._shared], "By", "Shared memory, mostly tmpfs (Shmem)"
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_LIMIT,
            [self._value("HugePages_Total")],
            "{page}",
            "Hugepages in the pool",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_PAGE_SIZE,
            [self._value("Hugepagesize")],
            "By",
            "Default hugepage size",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_RESERVED,
            [self._value("HugePages_Rsvd")],
            "{page}",
            "Hugepages reserved for a mapping but not yet faulted in",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_SURPLUS,
            [self._value("HugePages_Surp")],
            "{page}",
            "Hugepages allocated above the pool size (overcommit)",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_USAGE, [self._hugepages], "{page}", "Hugepages by state"
        )
        meter.create_observable_gauge(
            sm.SYSTEM_MEMORY_LINUX_HUGEPAGES_UTILIZATION,
            [self._hugepages_utilization],
            "1",
            "Share of the hugepage pool in use",
        )
        meter.create_observable_up_down_counter(
            NUMA_USAGE, [self._numa_usage], "By", "Memory of each NUMA node, by state"
        )
        meter.create_observable_up_down_counter(
            NUMA_LIMIT, [self._numa_limit], "By", "Total memory of each NUMA node"
        )

    def _values(self) -> dict[str, int]:
        return {} if self.snapshot is None else self.snapshot.info.values

    def _usage(self, _: CallbackOptions) -> Iterable[Observation]:
        states = None if self.snapshot is None else memory_states(self.snapshot.info)
        for state, value in (states or {}).items():
            yield Observation(value, {SYSTEM_MEMORY_STATE: state})

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        states = None if self.snapshot is None else memory_states(self.snapshot.info)
        # Shares of MemTotal (the states may sum to more: see memory_states).
        total = self._values().get("MemTotal", 0)
        if states and total > 0:
            for state, value in states.items():
                yield Observation(value / total, {SYSTEM_MEMORY_STATE: state})

    def _limit(self, _: CallbackOptions) -> Iterable[Observation]:
        if "MemTotal" in self._values():
            yield Observation(self._values()["MemTotal"])

    def _available(self, _: CallbackOptions) -> Iterable[Observation]:
        if "MemAvailable" in self._values():
            yield Observation(self._values()["MemAvailable"])

    def _slab(self, _: CallbackOptions) -> Iterable[Observation]:
        v = self._values()
        for key, state in (("SReclaimable", "reclaimable"), ("SUnreclaim", "unreclaimable")):
            if key in v:
                yield Observation(v[key], {SYSTEM_MEMORY_LINUX_SLAB_STATE: state})

    def _shared(self, _: CallbackOptions) -> Iterable[Observation]:
        if "Shmem" in self._values():
            yield Observation(self._values()["Shmem"])

    def _value(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            if key in self._values():
                yield Observation(self._values()[key])

        return observe

    def _hugepages(self, _: CallbackOptions) -> Iterable[Observation]:
        v = self._values()
        if "HugePages_Total" in v and "HugePages_Free" in v:
            free = min(v["HugePages_Free"], v["HugePages_Total"])
            yield Observation(v["HugePages_Total"] - free, {SYSTEM_MEMORY_LINUX_HUGEPAGES_STATE: "used"})
            yield Observation(free, {SYSTEM_MEMORY_LINUX_HUGEPAGES_STATE: "free"})

    def _hugepages_utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        v = self._values()
        total = v.get("HugePages_Total", 0)
        if total > 0 and "HugePages_Free" in v:
            yield Observation((total - min(v["HugePages_Free"], total)) / total)

    def _numa_usage(self, _: CallbackOptions) -> Iterable[Observation]:
        for node, info in ({} if self.snapshot is None else self.snapshot.nodes).items():
            for state, value in (node_states(info) or {}).items():
                yield Observation(value, {NUMA_NODE: node, SYSTEM_MEMORY_STATE: state})

    def _numa_limit(self, _: CallbackOptions) -> Iterable[Observation]:
        for node, info in ({} if self.snapshot is None else self.snapshot.nodes).items():
            if "MemTotal" in info.values:
                yield Observation(info.values["MemTotal"], {NUMA_NODE: node})
