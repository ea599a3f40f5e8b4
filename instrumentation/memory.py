"""Memory: usage and utilization by state, limit, Linux available, from /proc/meminfo (proc(5))."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.system_attributes import SYSTEM_MEMORY_STATE
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.meminfo import MemInfo, parse_meminfo


def memory_states(info: MemInfo) -> dict[str, int] | None:
    """Split MemTotal into the semantic conventions' states: used, free, buffers, cached.

    `cached` counts page cache plus reclaimable slab, as `free(1)` and the Collector do, so
    used + free + buffers + cached == MemTotal.
    """
    v = info.values
    try:
        total, free = v["MemTotal"], v["MemFree"]
    except KeyError:
        return None
    buffers = v.get("Buffers", 0)
    cached = v.get("Cached", 0) + v.get("SReclaimable", 0)
    used = total - free - buffers - cached
    if used < 0:  # the counters are read non-atomically; fold the excess into cached
        cached, used = cached + used, 0
    return {"used": used, "free": free, "buffers": buffers, "cached": cached}


class MemoryCollector(Collector[MemInfo]):
    """`system.memory.usage`, `.utilization`, `.limit`, `system.memory.linux.available`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "meminfo"
        if not self._path.exists():
            raise CollectorUnavailableError(f"{self._path} does not exist")

    def sample(self, now: float) -> MemInfo:
        info = parse_meminfo(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", info.malformed)
        return info

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

    def _usage(self, _: CallbackOptions) -> Iterable[Observation]:
        states = None if self.snapshot is None else memory_states(self.snapshot)
        for state, value in (states or {}).items():
            yield Observation(value, {SYSTEM_MEMORY_STATE: state})

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        states = None if self.snapshot is None else memory_states(self.snapshot)
        total = sum((states or {}).values())
        if states and total > 0:
            for state, value in states.items():
                yield Observation(value / total, {SYSTEM_MEMORY_STATE: state})

    def _limit(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and "MemTotal" in self.snapshot.values:
            yield Observation(self.snapshot.values["MemTotal"])

    def _available(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and "MemAvailable" in self.snapshot.values:
            yield Observation(self.snapshot.values["MemAvailable"])
