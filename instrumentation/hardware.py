"""Hardware health: EDAC memory error counts and hwmon temperatures.

Sources: /sys/devices/system/edac/mc/mcN/{ce_count,ue_count} and .../csrowM/{ce_count,ue_count}
(Documentation/ABI/testing/sysfs-devices-edac, Documentation/admin-guide/ras.rst), and
/sys/class/hwmon/hwmonN/temp*_{input,label,max,crit} in millidegrees Celsius
(Documentation/hwmon/sysfs-interface.rst).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_ID,
    HW_LIMIT_TYPE,
    HW_NAME,
    HW_PARENT,
    HW_TYPE,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.oneline import parse_int

_log = logging.getLogger(__name__)

_MC = re.compile(r"^mc(\d+)$")
_CSROW = re.compile(r"^csrow(\d+)$")
_HWMON = re.compile(r"^hwmon(\d+)$")
_TEMP = re.compile(r"^temp(\d+)_input$")
# hwmon limit file -> the semantic conventions' hw.limit_type
LIMITS = {"max": "high.degraded", "crit": "high.critical"}
REFRESH = 30
ERRORS = {"ce_count": "corrected", "ue_count": "uncorrected"}


@dataclass(frozen=True, slots=True)
class ErrorCount:
    """One EDAC counter: a memory controller's or one of its chip-select rows'."""

    hw_id: str
    name: str
    parent: str | None
    error: str
    count: int


@dataclass(frozen=True, slots=True)
class Temperature:
    """One hwmon temperature sensor, degrees Celsius, with its limits."""

    hw_id: str
    name: str
    celsius: float
    limits: dict[str, float]


@dataclass(slots=True)
class HardwareSnapshot:
    """This tick's EDAC counters and temperatures."""

    errors: list[ErrorCount] = field(default_factory=list)
    temperatures: list[Temperature] = field(default_factory=list)


def _numbered(directory: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """Return (number, path) of the entries named like `pattern`, in numeric order."""
    try:
        found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := pattern.match(p.name))]
    except OSError:
        return []
    return sorted(found)


class HardwareCollector(Collector[HardwareSnapshot]):
    """`hw.errors` (EDAC, hw.type=memory) and `hw.temperature`, `hw.temperature.limit` (hwmon)."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._edac = ctx.sysfs / "devices" / "system" / "edac" / "mc"
        self._hwmon = ctx.sysfs / "class" / "hwmon"
        if not _numbered(self._edac, _MC) and not _numbered(self._hwmon, _HWMON):
            raise CollectorUnavailableError(
                f"neither EDAC memory controllers ({self._edac}) nor hwmon sensors"
            )
        self._warned: set[Path] = set()
        # Sensor names, labels and limits only change when a driver reloads: read them every
        # REFRESH ticks, the readings every tick.
        self._meta: dict[Path, tuple[str, dict[str, float]]] = {}
        self._ticks = 0

    def _read(self, path: Path) -> str | None:
        """Return a sysfs attribute's text; None when absent, or unreadable (logged once per directory)."""
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            # Some sensors answer EIO or ENODATA while asleep: skip the item this tick.
            if path.parent not in self._warned:
                self._warned.add(path.parent)
                _log.warning("cannot read %s: %s", path, exc.strerror)
            return None

    def _int(self, path: Path) -> int | None:
        text = self._read(path)
        if text is None:
            return None
        value = parse_int(text)
        if value is None:
            self.ctx.count_error("malformed_line")
        return value

    def sample(self, now: float) -> HardwareSnapshot:
        self._ticks += 1
        if self._ticks % REFRESH == 0:
            self._meta.clear()
        return HardwareSnapshot(list(self._edac_counts()), list(self._temperatures()))

    def _edac_counts(self) -> Iterable[ErrorCount]:
        for _, mc in _numbered(self._edac, _MC):
            name = (self._read(mc / "mc_name") or mc.name).strip()
            for fname, error in ERRORS.items():
                count = self._int(mc / fname)
                if count is not None and count >= 0:
                    yield ErrorCount(mc.name, name, None, error, count)
            for _, row in _numbered(mc, _CSROW):
                for fname, error in ERRORS.items():
                    count = self._int(row / fname)
                    if count is not None and count >= 0:
                        yield ErrorCount(f"{mc.name}_{row.name}", f"{name} {row.name}", mc.name, error, count)

    def _temperatures(self) -> Iterable[Temperature]:
        for _, hwmon in _numbered(self._hwmon, _HWMON):
            # Kernels before 3.x put the attributes in the device directory, not the class one.
            base = hwmon if _numbered(hwmon, _TEMP) else hwmon / "device"
            for number, path in _numbered(base, _TEMP):
                millideg = self._int(path)
                if millideg is None:
                    continue
                meta = self._meta.get(path)
                if meta is None:
                    meta = self._meta[path] = self._sensor(hwmon, base, number)
                yield Temperature(f"{hwmon.name}_temp{number}", meta[0], millideg / 1e3, meta[1])

    def _sensor(self, hwmon: Path, base: Path, number: int) -> tuple[str, dict[str, float]]:
        """Return a sensor's display name ("chip label") and its limits in degrees Celsius."""
        chip = (self._read(hwmon / "name") or self._read(base / "name") or hwmon.name).strip()
        label = (self._read(base / f"temp{number}_label") or f"temp{number}").strip()
        limits = {}
        for suffix, limit_type in LIMITS.items():
            value = self._int(base / f"temp{number}_{suffix}")
            if value is not None:
                limits[limit_type] = value / 1e3
        return f"{chip} {label}", limits

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_counter(
            hm.HW_ERRORS,
            [self._errors],
            "{error}",
            "Memory errors EDAC counted per memory controller and, with hw.parent, per chip-select row",
        )
        meter.create_observable_gauge(hm.HW_TEMPERATURE, [self._temps], "Cel", "Sensor temperature")
        meter.create_observable_gauge(
            hm.HW_TEMPERATURE_LIMIT, [self._limits], "Cel", "Sensor temperature thresholds"
        )

    def _snap(self) -> HardwareSnapshot:
        return self.snapshot or HardwareSnapshot()

    def _errors(self, _: CallbackOptions) -> Iterable[Observation]:
        for e in self._snap().errors:
            attrs = {HW_ID: e.hw_id, HW_NAME: e.name, HW_TYPE: "memory", ERROR_TYPE: e.error}
            if e.parent is not None:
                attrs[HW_PARENT] = e.parent
            yield Observation(e.count, attrs)

    def _temps(self, _: CallbackOptions) -> Iterable[Observation]:
        for t in self._snap().temperatures:
            yield Observation(t.celsius, {HW_ID: t.hw_id, HW_NAME: t.name, HW_TYPE: "temperature"})

    def _limits(self, _: CallbackOptions) -> Iterable[Observation]:
        for t in self._snap().temperatures:
            for limit_type, celsius in t.limits.items():
                yield Observation(
                    celsius,
                    {HW_ID: t.hw_id, HW_NAME: t.name, HW_TYPE: "temperature", HW_LIMIT_TYPE: limit_type},
                )
