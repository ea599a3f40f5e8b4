"""Software RAID (md): array state, members in sync, failed and spare, degraded, sync progress, size.

Source: {procfs}/mdstat (md(4), Documentation/admin-guide/md.rst). The collector is off on a
host without the md driver (no /proc/mdstat); with the driver but no array it reports nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.mdstat import Array, MdStat, parse_mdstat
from ._source import require_readable

ARRAY = "sysops.raid.array"
LEVEL = "sysops.raid.level"
DISK_STATE = "sysops.raid.disk.state"
DEGRADED = "sysops.raid.degraded"


class MdRaidCollector(Collector[MdStat]):
    """`sysops.raid.*`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "mdstat"
        require_readable(self._path)

    def sample(self, now: float) -> MdStat:
        stat = parse_mdstat(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", stat.malformed)
        return stat

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            "sysops.raid.active", [self._active], "1", "Array active (1) or inactive (0)"
        )
        meter.create_observable_gauge(
            DEGRADED, [self._degraded], "1", "Array degraded: fewer members in sync than it is made of (1)"
        )
        meter.create_observable_up_down_counter(
            "sysops.raid.disks",
            [self._disks],
            "{disk}",
            "Array members by state: in sync (active), failed, spare, missing",
        )
        meter.create_observable_up_down_counter(
            "sysops.raid.disks.required", [self._required], "{disk}", "Disks the array is made of"
        )
        meter.create_observable_gauge(
            "sysops.raid.sync.progress",
            [self._sync],
            "1",
            "Share of the running resync, recovery, reshape or check done",
        )
        meter.create_observable_up_down_counter("sysops.raid.size", [self._size], "By", "Array size")

    def _arrays(self) -> Iterable[tuple[str, Array]]:
        return ({} if self.snapshot is None else self.snapshot.arrays).items()

    @staticmethod
    def _attrs(name: str, array: Array) -> dict[str, str]:
        # An inactive array shows no level: "unknown", so every point has the same keys.
        return {ARRAY: name, LEVEL: array.level or "unknown"}

    def _active(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            yield Observation(1 if array.state == "active" else 0, self._attrs(name, array))

    def _degraded(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            if array.raid_disks is not None:
                yield Observation(1 if array.degraded else 0, self._attrs(name, array))

    def _disks(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            attrs = self._attrs(name, array)
            states = {"failed": array.failed, "spare": array.spare}
            if array.active is not None and array.raid_disks is not None:
                states["active"] = array.active
                states["missing"] = max(0, array.raid_disks - array.active - array.failed)
            for state, n in states.items():
                yield Observation(n, {**attrs, DISK_STATE: state})

    def _required(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            if array.raid_disks is not None:
                yield Observation(array.raid_disks, self._attrs(name, array))

    def _sync(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            if array.sync_progress is not None and array.sync_action is not None:
                yield Observation(
                    array.sync_progress,
                    {**self._attrs(name, array), "sysops.raid.sync.action": array.sync_action},
                )

    def _size(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, array in self._arrays():
            if array.blocks is not None:
                yield Observation(array.blocks * 1024, self._attrs(name, array))
