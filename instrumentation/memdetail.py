"""Memory in detail: every /proc/meminfo field, OOM kills, NUMA allocation events per node, free
blocks per zone and order (fragmentation), zone free pages against their watermarks, KSM.

Sources (proc(5)): {procfs}/meminfo (shared with the memory collector through the tick cache),
vmstat's oom_kill, buddyinfo, zoneinfo; {sysfs}/devices/system/node/nodeN/numastat
(Documentation/admin-guide/numastat.rst); {sysfs}/kernel/mm/ksm/* (Documentation/admin-guide/mm/ksm.rst).
A missing file disables only its own figures.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.keyed import parse_flat_keyed
from ._linux.meminfo import parse_meminfo
from ._linux.memzones import Zones, parse_buddyinfo, parse_zoneinfo
from ._linux.oneline import parse_int
from ._optional import OptionalFiles
from ._source import require_readable

FIELD = "sysops.memory.meminfo.field"
NODE = "sysops.numa.node"
ZONE = "sysops.memory.zone"
_NODE = re.compile(r"^node(\d+)$")
# meminfo fields that are page counts, not sizes (the memory collector reports them).
PAGE_COUNTS = frozenset({"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"})
KSM_PAGES = {
    "pages_shared": "shared",
    "pages_sharing": "sharing",
    "pages_unshared": "unshared",
    "pages_volatile": "volatile",
}


@dataclass(slots=True)
class MemDetailSnapshot:
    """This tick's readings; None or empty where a source could not be read."""

    meminfo: dict[str, int] | None = None
    oom_kills: int | None = None
    numastat: dict[int, dict[str, int]] = field(default_factory=dict)
    buddy: Zones | None = None
    zones: Zones | None = None
    ksm: dict[str, int] = field(default_factory=dict)


class MemDetailCollector(Collector[MemDetailSnapshot]):
    """`sysops.memory.meminfo`, `.oom_kills`, `.numa.events`, `.buddy.free_blocks`, `.zone.*`, `.ksm.*`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._meminfo = ctx.procfs / "meminfo"
        require_readable(self._meminfo)
        self._optional = OptionalFiles(ctx)
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._nodes = ctx.sysfs / "devices" / "system" / "node"
        self._ksm = ctx.sysfs / "kernel" / "mm" / "ksm"

    def sample(self, now: float) -> MemDetailSnapshot:
        snap = MemDetailSnapshot()
        read, count, proc = self._optional.read, self.ctx.count_error, self.ctx.procfs
        if (text := read(self._meminfo)) is not None:
            info = parse_meminfo(text)  # malformed lines are the memory collector's to count
            snap.meminfo = {k: v for k, v in info.values.items() if k not in PAGE_COUNTS}
        if (text := read(proc / "vmstat")) is not None:
            snap.oom_kills = parse_flat_keyed(text).values.get("oom_kill")
        if (text := read(proc / "buddyinfo")) is not None:
            snap.buddy = parse_buddyinfo(text)
            count("malformed_line", snap.buddy.malformed)
        if (text := read(proc / "zoneinfo")) is not None:
            snap.zones = parse_zoneinfo(text)
            count("malformed_line", snap.zones.malformed)
        try:
            nodes = sorted(int(m.group(1)) for e in os.listdir(self._nodes) if (m := _NODE.match(e)))
        except OSError:
            nodes = []  # no NUMA support in the kernel: normal
        for node in nodes:
            text = read(self._nodes / f"node{node}" / "numastat", counted=False)
            if text is not None:
                parsed = parse_flat_keyed(text)
                count("malformed_line", parsed.malformed)
                snap.numastat[node] = parsed.values
        for name in (*KSM_PAGES, "full_scans"):
            text = read(self._ksm / name, counted=False)  # no CONFIG_KSM: normal
            value = None if text is None else parse_int(text)
            if value is not None:
                snap.ksm[name] = value
        return snap

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            "sysops.memory.meminfo", [self._meminfo_cb], "By", "Every size field of /proc/meminfo, by field"
        )
        meter.create_observable_counter(
            "sysops.memory.oom_kills", [self._oom], "{process}", "Processes killed by the OOM killer"
        )
        meter.create_observable_counter(
            "sysops.memory.numa.events",
            [self._numa],
            "{page}",
            "NUMA allocation outcomes per node (numa_hit, numa_miss, numa_foreign, ...)",
        )
        meter.create_observable_gauge(
            "sysops.memory.buddy.free_blocks",
            [self._buddy],
            "{block}",
            "Free blocks of 2**order pages per node and zone (fragmentation)",
        )
        meter.create_observable_gauge(
            "sysops.memory.zone.free", [self._zone("free")], "By", "Free memory of each zone"
        )
        meter.create_observable_gauge(
            "sysops.memory.zone.watermark",
            [self._watermarks],
            "By",
            "Zone watermarks: below low kswapd reclaims, below min allocations stall",
        )
        meter.create_observable_up_down_counter(
            "sysops.memory.ksm.pages", [self._ksm_pages], "{page}", "Kernel same-page merging pages by state"
        )
        meter.create_observable_counter(
            "sysops.memory.ksm.full_scans", [self._ksm_scans], "{scan}", "Full KSM scans completed"
        )

    def _meminfo_cb(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        for name, value in ({} if snap is None or snap.meminfo is None else snap.meminfo).items():
            yield Observation(value, {FIELD: name})

    def _oom(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and self.snapshot.oom_kills is not None:
            yield Observation(self.snapshot.oom_kills)

    def _numa(self, _: CallbackOptions) -> Iterable[Observation]:
        for node, values in ({} if self.snapshot is None else self.snapshot.numastat).items():
            for name, value in values.items():
                yield Observation(value, {NODE: node, "sysops.numa.event": name})

    def _buddy(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.buddy is None:
            return
        for (node, zone), orders in snap.buddy.zones.items():
            for order, n in orders.items():
                yield Observation(n, {NODE: node, ZONE: zone, "sysops.memory.order": int(order)})

    def _zone(self, key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is None or snap.zones is None:
                return
            for (node, zone), values in snap.zones.zones.items():
                if key in values and values.get("managed", 1) > 0:  # skip empty zones
                    yield Observation(values[key] * self._page, {NODE: node, ZONE: zone})

        return observe

    def _watermarks(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.zones is None:
            return
        for (node, zone), values in snap.zones.zones.items():
            if values.get("managed", 1) <= 0:
                continue
            for level in ("min", "low", "high"):
                if level in values:
                    yield Observation(
                        values[level] * self._page, {NODE: node, ZONE: zone, "sysops.memory.watermark": level}
                    )

    def _ksm_pages(self, _: CallbackOptions) -> Iterable[Observation]:
        ksm = {} if self.snapshot is None else self.snapshot.ksm
        for name, state in KSM_PAGES.items():
            if name in ksm:
                yield Observation(ksm[name], {"sysops.memory.ksm.state": state})

    def _ksm_scans(self, _: CallbackOptions) -> Iterable[Observation]:
        ksm = {} if self.snapshot is None else self.snapshot.ksm
        if "full_scans" in ksm:
            yield Observation(ksm["full_scans"])
