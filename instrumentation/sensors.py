"""Hardware sensors: hwmon fans, voltages, power and current with their alarms; thermal zones (the
only temperature source on many ARM hosts); power supplies and batteries; RAPL energy; EDAC error
counts per DIMM (which module to replace).

Sources: {sysfs}/class/hwmon/hwmonN/{fan,in,power,curr}M_{input,label,alarm}
(Documentation/hwmon/sysfs-interface.rst: fans in RPM, voltages in mV, power in uW, current in
mA), {sysfs}/class/thermal/thermal_zoneN/{type,temp} (m°C; Documentation/driver-api/thermal/
sysfs-api.rst), {sysfs}/class/power_supply/*/ (Documentation/ABI/testing/sysfs-class-power),
{sysfs}/class/powercap/intel-rapl:*/{name,energy_uj} (Documentation/power/powercap/powercap.rst),
{sysfs}/devices/system/edac/mc/mcN/dimmM/{dimm_label,dimm_ce_count,dimm_ue_count}
(Documentation/admin-guide/ras.rst). hwmon temperatures are the `hardware` collector's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_ID,
    HW_NAME,
    HW_PARENT,
    HW_STATE,
    HW_TYPE,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._optional import read_attribute, read_int_attribute

# hwmon kind -> (hw.type, scale from the file's unit to the metric's)
HWMON_KINDS = {
    "fan": ("fan", 1.0),
    "in": ("voltage", 1e-3),
    "power": ("power", 1e-6),
    "curr": ("current", 1e-3),
}
_HWMON_INPUT = re.compile(r"^(fan|in|power|curr)(\d+)_input$")
_NUMBERED = re.compile(r"^(hwmon|thermal_zone|mc|dimm)(\d+)$")
CURRENT = "sysops.hw.current"


@dataclass(frozen=True, slots=True)
class Reading:
    """One sensor value in the metric's unit, with its identity and alarm state (None: no alarm file)."""

    kind: str  # fan, voltage, power, current, temperature, ...
    id: str
    name: str
    parent: str | None
    value: float
    alarm: bool | None = None


@dataclass(slots=True)
class SensorsSnapshot:
    """This tick's sensors, supplies, energy counters and DIMM error counts."""

    readings: list[Reading] = field(default_factory=list)
    supplies: list[tuple[str, str, dict[str, float]]] = field(default_factory=list)  # id, type, values
    energy: list[tuple[str, str, float]] = field(default_factory=list)  # id, name, joules
    dimms: list[tuple[str, str, str, int]] = field(default_factory=list)  # id, label, error, count


def _read(path: Path) -> str | None:
    text = read_attribute(path)
    return None if text is None else text.strip()


def _numbered(path: Path, prefix: str) -> list[tuple[int, Path]]:
    try:
        names = os.listdir(path)
    except OSError:
        return []
    out = []
    for name in names:
        m = _NUMBERED.match(name)
        if m is not None and m.group(1) == prefix:
            out.append((int(m.group(2)), path / name))
    return sorted(out)


class SensorsCollector(Collector[SensorsSnapshot]):
    """`hw.fan.speed`, `hw.voltage`, `hw.power`, `sysops.hw.current`, `hw.temperature` (thermal
    zones), `hw.status` (sensor alarms), `hw.battery.charge`, `hw.energy`, `hw.errors` per DIMM."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        s = ctx.sysfs
        self._hwmon = s / "class" / "hwmon"
        self._thermal = s / "class" / "thermal"
        self._supply = s / "class" / "power_supply"
        self._rapl = s / "class" / "powercap"
        self._edac = s / "devices" / "system" / "edac" / "mc"
        sources = (self._hwmon, self._thermal, self._supply, self._rapl, self._edac)
        if not any(p.is_dir() and os.listdir(p) for p in sources):
            raise CollectorUnavailableError(
                "no hwmon, thermal zone, power supply, RAPL or EDAC DIMM under " + str(s)
            )

    def _number(self, path: Path) -> int | None:
        return read_int_attribute(self.ctx, path)

    def sample(self, now: float) -> SensorsSnapshot:
        snap = SensorsSnapshot()
        self._hwmon_sensors(snap)
        for n, zone in _numbered(self._thermal, "thermal_zone"):
            temp = self._number(zone / "temp")
            if temp is not None:
                name = _read(zone / "type") or f"thermal_zone{n}"
                snap.readings.append(Reading("temperature", f"thermal_zone{n}", name, None, temp / 1000))
        self._supplies(snap)
        try:
            zones = sorted(p for p in os.listdir(self._rapl) if p.startswith("intel-rapl:"))
        except OSError:
            zones = []
        for rapl in zones:
            uj = self._number(self._rapl / rapl / "energy_uj")
            if uj is not None:
                snap.energy.append((rapl, _read(self._rapl / rapl / "name") or rapl, uj / 1e6))
        for m, mc in _numbered(self._edac, "mc"):
            for d, dimm in _numbered(mc, "dimm"):
                label = _read(dimm / "dimm_label") or f"mc{m}/dimm{d}"
                for fname, error in (("dimm_ce_count", "corrected"), ("dimm_ue_count", "uncorrected")):
                    count = self._number(dimm / fname)
                    if count is not None:
                        snap.dimms.append((f"mc{m}/dimm{d}", label, error, count))
        return snap

    def _hwmon_sensors(self, snap: SensorsSnapshot) -> None:
        for n, chip in _numbered(self._hwmon, "hwmon"):
            chip_name = _read(chip / "name") or f"hwmon{n}"
            try:
                files = sorted(os.listdir(chip))
            except OSError:
                continue
            for fname in files:
                m = _HWMON_INPUT.match(fname)
                if m is None:
                    continue
                raw = self._number(chip / fname)
                if raw is None:
                    continue
                prefix = f"{m.group(1)}{m.group(2)}"
                kind, scale = HWMON_KINDS[m.group(1)]
                label = _read(chip / f"{prefix}_label") or f"{chip_name} {prefix}"
                alarm = self._number(chip / f"{prefix}_alarm")
                snap.readings.append(
                    Reading(
                        kind,
                        f"hwmon{n}/{prefix}",
                        label,
                        chip_name,
                        raw * scale,
                        None if alarm is None else alarm != 0,
                    )
                )

    def _supplies(self, snap: SensorsSnapshot) -> None:
        try:
            names = sorted(os.listdir(self._supply))
        except OSError:
            return
        for name in names:
            base = self._supply / name
            kind = (_read(base / "type") or "unknown").lower()
            values: dict[str, float] = {}
            for fname, key, scale in (
                ("online", "online", 1.0),
                ("capacity", "capacity", 0.01),
                ("voltage_now", "voltage", 1e-6),
                ("current_now", "current", 1e-6),
                ("power_now", "power", 1e-6),
            ):
                value = self._number(base / fname)
                if value is not None:
                    values[key] = value * scale
            status = _read(base / "status")
            if status is not None:
                values["status:" + status.lower()] = 1.0
            snap.supplies.append((name, kind, values))

    # -- instruments -------------------------------------------------------------------------

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(hm.HW_FAN_SPEED, [self._kind("fan")], "rpm", "Fan speed")
        meter.create_observable_gauge(hm.HW_VOLTAGE, [self._kind("voltage")], "V", "Voltage sensor reading")
        meter.create_observable_gauge(hm.HW_POWER, [self._kind("power")], "W", "Power sensor reading")
        meter.create_observable_gauge(CURRENT, [self._kind("current")], "A", "Current sensor reading")
        meter.create_observable_gauge(
            hm.HW_TEMPERATURE, [self._kind("temperature")], "Cel", "Thermal zone temperature"
        )
        meter.create_observable_up_down_counter(
            hm.HW_STATUS,
            [self._alarms],
            "1",
            "Sensor and power supply state: 1 for the current hw.state (ok, degraded on alarm), 0 otherwise",
        )
        meter.create_observable_gauge(
            hm.HW_BATTERY_CHARGE, [self._battery], "1", "Remaining charge of each battery"
        )
        meter.create_observable_counter(hm.HW_ENERGY, [self._energy], "J", "Energy consumed per RAPL zone")
        meter.create_observable_counter(
            hm.HW_ERRORS, [self._dimm_errors], "{error}", "Memory errors per DIMM, corrected and uncorrected"
        )

    def _kind(self, kind: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for r in [] if self.snapshot is None else self.snapshot.readings:
                if r.kind == kind:
                    attrs = {
                        HW_ID: r.id,
                        HW_NAME: r.name,
                        HW_TYPE: "temperature" if kind == "temperature" else kind,
                    }
                    if r.parent is not None:
                        attrs[HW_PARENT] = r.parent
                    yield Observation(r.value, attrs)

        return observe

    def _alarms(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        for r in snap.readings:
            if r.alarm is None:
                continue
            for state in ("ok", "degraded"):
                yield Observation(
                    1 if (state == "degraded") == r.alarm else 0,
                    {HW_ID: r.id, HW_NAME: r.name, HW_TYPE: r.kind, HW_STATE: state},
                )
        for name, kind, values in snap.supplies:
            if kind == "mains" and "online" in values:
                for state in ("ok", "failed"):
                    up = values["online"] > 0
                    yield Observation(
                        1 if (state == "ok") == up else 0,
                        {HW_ID: name, HW_NAME: name, HW_TYPE: "power_supply", HW_STATE: state},
                    )

    def _battery(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, kind, values in [] if self.snapshot is None else self.snapshot.supplies:
            if kind == "battery" and "capacity" in values:
                yield Observation(values["capacity"], {HW_ID: name, HW_TYPE: "battery"})

    def _energy(self, _: CallbackOptions) -> Iterable[Observation]:
        for zone, name, joules in [] if self.snapshot is None else self.snapshot.energy:
            yield Observation(joules, {HW_ID: zone, HW_NAME: name, HW_TYPE: "cpu"})

    def _dimm_errors(self, _: CallbackOptions) -> Iterable[Observation]:
        for ident, label, error, count in [] if self.snapshot is None else self.snapshot.dimms:
            yield Observation(count, {HW_ID: ident, HW_NAME: label, HW_TYPE: "memory", ERROR_TYPE: error})
