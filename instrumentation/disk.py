"""Disk: bytes, operations, busy time, operation time and merges per whole block device, and the
average time per completed operation since the last tick.

Source: /proc/diskstats (Documentation/admin-guide/iostats.rst). A whole device is one with a
directory under {sysfs}/block (partitions live below their disk there); loop, ram and zram
devices are excluded by default through the `[instrumentation.disk]` patterns.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.disk_attributes import DISK_IO_DIRECTION
from opentelemetry.semconv._incubating.attributes.system_attributes import SYSTEM_DEVICE
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.diskstats import SECTOR, parse_diskstats
from ._linux.oneline import parse_int
from ._source import require_readable

_log = logging.getLogger(__name__)

# A partition's name: its disk's, then a number, after a "p" when the disk's ends in a digit.
_PARTITION = re.compile(r"^(.*?\d)p\d+$|^(.*?\D)\d+$")

OPERATION_TIME_AVERAGE = "sysops.disk.operation_time.average"

# iostats.rst fields with no semantic convention: name -> (field, scale, unit, kind, description).
# Discard fields need Linux 4.18, flush fields 5.5: a device whose line lacks them reports none.
EXTRA_COUNTERS = {
    "sysops.disk.io_time.weighted": (
        "weighted_io_ms",
        1e-3,
        "s",
        "Time spent doing I/O weighted by the operations in flight (the queue length integral)",
    ),
    "sysops.disk.discard.operations": ("discards", 1, "{operation}", "Discard operations completed"),
    "sysops.disk.discard.merged": ("discards_merged", 1, "{operation}", "Adjacent discards merged"),
    "sysops.disk.discard.io": ("sectors_discarded", SECTOR, "By", "Bytes discarded"),
    "sysops.disk.discard.time": ("discard_ms", 1e-3, "s", "Time spent on completed discards"),
    "sysops.disk.flush.operations": ("flushes", 1, "{operation}", "Flush requests completed"),
    "sysops.disk.flush.time": ("flush_ms", 1e-3, "s", "Time spent on completed flush requests"),
}
IN_PROGRESS = "sysops.disk.operations.in_progress"

# direction -> (operations, merged, sectors, milliseconds) fields of iostats.rst
DIRECTIONS = {
    "read": ("reads", "reads_merged", "sectors_read", "read_ms"),
    "write": ("writes", "writes_merged", "sectors_written", "write_ms"),
}


def average_operation_time(before: dict[str, int], now: dict[str, int]) -> dict[str, float]:
    """Return seconds per operation completed between two readings, per direction (0 when idle)."""
    out = {}
    for direction, (ops, _, _, ms) in DIRECTIONS.items():
        done = now.get(ops, 0) - before.get(ops, 0)
        spent = now.get(ms, 0) - before.get(ms, 0)
        if done < 0 or spent < 0:  # a counter wrapped or the device was re-created
            continue
        out[direction] = spent / done / 1e3 if done else 0.0
    return out


@dataclass(slots=True)
class DiskSnapshot:
    """This tick's counters of the reported devices and their average operation times."""

    devices: dict[str, dict[str, int]]
    average: dict[str, dict[str, float]]
    sizes: dict[str, int] = field(default_factory=dict)


class DiskCollector(Collector[DiskSnapshot]):
    """`system.disk.io`, `.operations`, `.io_time`, `.operation_time`, `.merged`, `.limit`, and
    `sysops.disk.operation_time.average`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "diskstats"
        require_readable(self._path)
        cfg = ctx.settings.instrumentation.disk
        self._include = [re.compile(p) for p in cfg.include]
        self._exclude = [re.compile(p) for p in cfg.exclude]
        self._block = ctx.sysfs / "block"
        self._whole: dict[str, bool] = {}
        self._previous: dict[str, dict[str, int]] = {}

    def _wanted(self, name: str) -> bool:
        """Decide once per device name: a whole device that the patterns let through."""
        wanted = self._whole.get(name)
        if wanted is None:
            included = not self._include or any(p.search(name) for p in self._include)
            if not included or any(p.search(name) for p in self._exclude):
                wanted = False
            else:
                # sysfs names a device with "/" in it (cciss/c0d0) with "!" instead.
                wanted = (self._block / name.replace("/", "!")).exists()
                if not wanted and not self._is_partition(name):
                    # Neither a whole device nor a known partition: say so instead of dropping it.
                    self.ctx.count_error("no_sysfs_entry")
                    _log.info(
                        "disk: %s is in diskstats but not under %s; skipped (disk or partition?)",
                        name,
                        self._block,
                    )
            if len(self._whole) > 10_000:  # bounded: device names churn on hosts that attach volumes
                self._whole.clear()
            self._whole[name] = wanted
        return wanted

    def _is_partition(self, name: str) -> bool:
        """A partition: sysfs says so, or its name is a whole device's plus a number (sda1, nvme0n1p1)."""
        node = name.replace("/", "!")
        if (self.ctx.sysfs / "class" / "block" / node / "partition").exists():
            return True
        match = _PARTITION.match(name)
        if match is None:
            return False
        disk = match.group(1) or match.group(2)
        return (self._block / disk.replace("/", "!")).exists()

    def sample(self, now: float) -> DiskSnapshot:
        stats = parse_diskstats(self.ctx.files.read_text(self._path))
        self.ctx.count_error("malformed_line", stats.malformed)
        devices = {name: c for name, c in stats.devices.items() if self._wanted(name)}
        average = {
            name: average_operation_time(self._previous[name], c)
            for name, c in devices.items()
            if name in self._previous
        }
        self._previous = devices
        return DiskSnapshot(devices, average, self._sizes(devices))

    def _sizes(self, devices: Iterable[str]) -> dict[str, int]:
        """Return each device's capacity in bytes (sysfs-block `size`: 512-byte sectors)."""
        out = {}
        for name in devices:
            try:
                text = (self._block / name.replace("/", "!") / "size").read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError):
                continue  # the device went away between the two reads: skip it this tick
            sectors = parse_int(text)
            if sectors is None or sectors < 0:
                self.ctx.count_error("malformed_line")
                continue
            out[name] = sectors * SECTOR
        return out

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_counter(
            sm.SYSTEM_DISK_IO, [self._per_direction(2, SECTOR)], "By", "Bytes read and written"
        )
        meter.create_observable_counter(
            sm.SYSTEM_DISK_OPERATIONS, [self._per_direction(0, 1)], "{operation}", "Operations completed"
        )
        meter.create_observable_counter(
            sm.SYSTEM_DISK_OPERATION_TIME,
            [self._per_direction(3, 1e-3)],
            "s",
            "Time spent on completed operations, summed over them (they overlap)",
        )
        meter.create_observable_counter(
            sm.SYSTEM_DISK_MERGED,
            [self._per_direction(1, 1)],
            "{operation}",
            "Adjacent operations merged into one",
        )
        meter.create_observable_counter(
            sm.SYSTEM_DISK_IO_TIME,
            [self._io_time],
            "s",
            "Time the device had at least one operation in flight",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_DISK_LIMIT, [self._limit], "By", "Capacity of the device"
        )
        meter.create_observable_gauge(
            OPERATION_TIME_AVERAGE,
            [self._average],
            "s",
            "Seconds per operation completed since the last tick (0 when none completed)",
        )
        self.register_extra(meter)

    def register_extra(self, meter: Meter) -> None:
        """The iostats fields beyond the semantic conventions: in flight, weighted time, discards, flushes."""
        meter.create_observable_up_down_counter(
            IN_PROGRESS, [self._field("in_progress", 1)], "{operation}", "Operations in flight now"
        )
        for name, (column, scale, unit, description) in EXTRA_COUNTERS.items():
            meter.create_observable_counter(name, [self._field(column, scale)], unit, description)

    def _field(self, column: str, scale: float) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for name, c in ({} if self.snapshot is None else self.snapshot.devices).items():
                value = c.get(column)
                if value is not None:
                    yield Observation(value * scale if scale != 1 else value, {SYSTEM_DEVICE: name})

        return observe

    def _per_direction(self, index: int, scale: float) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for name, c in ({} if self.snapshot is None else self.snapshot.devices).items():
                for direction, fields in DIRECTIONS.items():
                    value = c[fields[index]]
                    yield Observation(
                        value * scale if scale != 1 else value,
                        {SYSTEM_DEVICE: name, DISK_IO_DIRECTION: direction},
                    )

        return observe

    def _io_time(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, c in ({} if self.snapshot is None else self.snapshot.devices).items():
            yield Observation(c["io_ms"] / 1e3, {SYSTEM_DEVICE: name})

    def _limit(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, size in ({} if self.snapshot is None else self.snapshot.sizes).items():
            yield Observation(size, {SYSTEM_DEVICE: name})

    def _average(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, directions in ({} if self.snapshot is None else self.snapshot.average).items():
            for direction, seconds in directions.items():
                yield Observation(seconds, {SYSTEM_DEVICE: name, DISK_IO_DIRECTION: direction})
