"""Swap and paging: usage and utilization (per swap area), faults, operations.

Sources: /proc/meminfo SwapTotal/SwapFree (shared with the memory collector through the tick
cache), /proc/swaps and /proc/vmstat (proc(5)).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_DEVICE,
    SYSTEM_PAGING_DIRECTION,
    SYSTEM_PAGING_FAULT_TYPE,
    SYSTEM_PAGING_STATE,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.meminfo import parse_meminfo
from ._linux.swaps import SwapArea, parse_swaps
from ._linux.vmstat import parse_vmstat

_log = logging.getLogger(__name__)

# /proc/vmstat counter -> (system.paging.direction, system.paging.fault.type), as the Collector
# maps them: pages swapped are "major" operations, pages paged from/to block devices "minor".
OPERATIONS = {
    "pswpin": ("in", "major"),
    "pswpout": ("out", "major"),
    "pgpgin": ("in", "minor"),
    "pgpgout": ("out", "minor"),
}


@dataclass(slots=True)
class PagingSnapshot:
    """Swap totals (bytes), the swap areas, and the vmstat paging counters."""

    total: int | None = None
    free: int | None = None
    areas: list[SwapArea] = field(default_factory=list)
    vmstat: dict[str, int] = field(default_factory=dict)


class PagingCollector(Collector[PagingSnapshot]):
    """`system.paging.usage`, `.utilization`, `.faults`, `.operations`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._meminfo = ctx.procfs / "meminfo"
        self._swaps = ctx.procfs / "swaps"
        self._vmstat = ctx.procfs / "vmstat"
        if not self._meminfo.exists() and not self._vmstat.exists():
            raise CollectorUnavailableError(f"neither {self._meminfo} nor {self._vmstat} exists")
        self._disabled: set[str] = set()

    def _read(self, key: str, path: Path) -> str | None:
        """Return a source's text; on a permission error, disable that source with one log line."""
        if key in self._disabled:
            return None
        try:
            return self.ctx.files.read_text(path)
        except PermissionError as exc:
            self._disabled.add(key)
            _log.warning("paging: %s disabled: %s", path, exc)
        except OSError:
            pass  # absent this tick (no swap support): skip the item
        return None

    def sample(self, now: float) -> PagingSnapshot:
        snap = PagingSnapshot()
        text = self._read("meminfo", self._meminfo)
        if text is not None:
            info = parse_meminfo(text)
            # Malformed meminfo lines are counted by the memory collector, which reads the same text.
            snap.total, snap.free = info.values.get("SwapTotal"), info.values.get("SwapFree")
        text = self._read("swaps", self._swaps)
        if text is not None:
            swaps = parse_swaps(text)
            self.ctx.count_error("malformed_line", swaps.malformed)
            snap.areas = swaps.areas
        text = self._read("vmstat", self._vmstat)
        if text is not None:
            vm = parse_vmstat(text)
            self.ctx.count_error("malformed_line", vm.malformed)
            snap.vmstat = vm.values
        return snap

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            sm.SYSTEM_PAGING_USAGE,
            [self._usage],
            "By",
            "Swap space by state, per swap area (system.device); host-wide only without areas",
        )
        meter.create_observable_gauge(
            sm.SYSTEM_PAGING_UTILIZATION,
            [self._utilization],
            "1",
            "Share of swap space by state, per swap area (system.device); host-wide only without areas",
        )
        meter.create_observable_counter(
            sm.SYSTEM_PAGING_FAULTS, [self._faults], "{fault}", "Page faults, minor and major"
        )
        meter.create_observable_counter(
            sm.SYSTEM_PAGING_OPERATIONS,
            [self._operations],
            "{operation}",
            "Pages swapped (major) and paged from/to block devices (minor), in and out",
        )

    def _spaces(self) -> Iterable[tuple[dict[str, str], int, int]]:
        """Yield (attributes, used, free) for each swap area, or once for the host without them.

        Never both: a host-wide series next to the per-area ones would make sum() count every byte
        twice. The host-wide figures (SwapTotal/SwapFree) stand in only when /proc/swaps lists no
        area (unreadable, or swap configured in a way it does not show).
        """
        snap = self.snapshot
        if snap is None:
            return
        if snap.areas:
            for area in snap.areas:
                used = min(area.used, area.size)
                yield {SYSTEM_DEVICE: area.device}, used, area.size - used
        elif snap.total is not None and snap.free is not None:
            free = min(snap.free, snap.total)
            yield {}, snap.total - free, free

    def _usage(self, _: CallbackOptions) -> Iterable[Observation]:
        for attrs, used, free in self._spaces():
            yield Observation(used, {**attrs, SYSTEM_PAGING_STATE: "used"})
            yield Observation(free, {**attrs, SYSTEM_PAGING_STATE: "free"})

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        for attrs, used, free in self._spaces():
            if used + free > 0:  # no swap configured: no share to report
                yield Observation(used / (used + free), {**attrs, SYSTEM_PAGING_STATE: "used"})
                yield Observation(free / (used + free), {**attrs, SYSTEM_PAGING_STATE: "free"})

    def _faults(self, _: CallbackOptions) -> Iterable[Observation]:
        vm = {} if self.snapshot is None else self.snapshot.vmstat
        if "pgfault" in vm and "pgmajfault" in vm:
            # proc(5): pgfault counts every fault, major ones included.
            yield Observation(max(0, vm["pgfault"] - vm["pgmajfault"]), {SYSTEM_PAGING_FAULT_TYPE: "minor"})
            yield Observation(vm["pgmajfault"], {SYSTEM_PAGING_FAULT_TYPE: "major"})

    def _operations(self, _: CallbackOptions) -> Iterable[Observation]:
        vm = {} if self.snapshot is None else self.snapshot.vmstat
        for key, (direction, kind) in OPERATIONS.items():
            if key in vm:
                yield Observation(
                    vm[key], {SYSTEM_PAGING_DIRECTION: direction, SYSTEM_PAGING_FAULT_TYPE: kind}
                )
