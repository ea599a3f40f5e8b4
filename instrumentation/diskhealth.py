"""Physical disk health through smartctl: SMART verdict, NVMe critical warning, media errors,
wear (endurance), spare capacity, temperature, power-on time, ATA attributes.

Source: `smartctl --json --scan`, then `smartctl --json -i -H -A -d TYPE DEVICE` per device
(smartmontools; see instrumentation/_smart.py for the fields read). Off when smartctl is not
installed. smartctl runs on a worker thread at most every `[instrumentation.disk_health] interval`
seconds, each run bounded by `timeout`: the tick reads the latest results and never waits for it.
A device smartctl cannot read (permission, a USB bridge) is counted (`smartctl`) and left out.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_ID,
    HW_MODEL,
    HW_PHYSICAL_DISK_SMART_ATTRIBUTE,
    HW_PHYSICAL_DISK_STATE,
    HW_SERIAL_NUMBER,
    HW_STATE,
    HW_TYPE,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._smart import Device, Health, SmartctlRunner, SubprocessSmartctl, health, scan

_log = logging.getLogger(__name__)

CRITICAL_WARNING = "sysops.disk.health.critical_warning"
PERCENTAGE_USED = "sysops.disk.health.percentage_used"
SPARE = "sysops.disk.health.available_spare"
SPARE_THRESHOLD = "sysops.disk.health.available_spare.threshold"
POWER_ON = "sysops.disk.health.power_on_time"
STATES = ("ok", "degraded", "failed")
DISK = {HW_TYPE: "physical_disk"}


class DiskHealthCollector(Collector[dict[str, Health]]):
    """`hw.status`, `hw.errors`, `hw.temperature`, `hw.physical_disk.*` (hw.type physical_disk) and
    `sysops.disk.health.*`."""

    def __init__(self, ctx: CollectorContext, runner: SmartctlRunner | None = None) -> None:
        super().__init__(ctx)
        cfg = ctx.settings.instrumentation.disk_health
        if runner is None:
            program = shutil.which(cfg.smartctl)
            if program is None:
                raise CollectorUnavailableError(f"{cfg.smartctl} not found (install smartmontools)")
            runner = SubprocessSmartctl(program, cfg.timeout)
        self._runner = runner
        self._interval = cfg.interval
        self._lock = threading.Lock()
        self._latest: dict[str, Health] = {}
        self._worker: threading.Thread | None = None
        self._due: float | None = None
        self._warned: set[str] = set()

    def refresh(self) -> None:
        """Scan for devices and read each one's health (the worker's job; tests call it directly)."""
        try:
            devices = scan(self._runner.run(["--scan"]))
        except OSError as exc:
            self.ctx.count_error("smartctl")
            self._warn(f"scan: {exc}", "disk health: smartctl --scan failed: %s", exc)
            return
        readings: dict[str, Health] = {}
        for device in devices:
            reading = self._read(device)
            if reading is not None:
                readings[reading.id] = reading
        with self._lock:
            self._latest = readings

    def _read(self, device: Device) -> Health | None:
        try:
            doc = self._runner.run(["-i", "-H", "-A", "-d", device.type, device.name])
        except OSError as exc:
            self.ctx.count_error("smartctl")
            self._warn(device.name, "disk health: %s: %s", device.name, exc)
            return None
        reading = health(doc, device)
        if reading is None:
            self.ctx.count_error("smartctl")
            self._warn(
                device.name, "disk health: smartctl cannot read %s (permission, or a bridge)", device.name
            )
        return reading

    def _warn(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _log.warning(msg, *args)

    def sample(self, now: float) -> dict[str, Health]:
        # The readings finished so far; a round started now shows from a later tick on.
        with self._lock:
            latest = dict(self._latest)
        if (self._due is None or now >= self._due) and (self._worker is None or not self._worker.is_alive()):
            self._due = now + self._interval
            self._worker = threading.Thread(target=self.refresh, name="smartctl", daemon=True)
            self._worker.start()
        return latest

    def wait(self, timeout: float) -> bool:
        """Wait for a running refresh to finish; True when none is running any more."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def close(self) -> None:
        """A smartctl run in flight is bounded by its timeout; the daemon worker never holds exit."""

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            hm.HW_STATUS,
            [self._status],
            "1",
            "Disk health state: 1 for the current hw.state, 0 for the others",
        )
        meter.create_observable_counter(
            hm.HW_ERRORS,
            [self._errors],
            "{error}",
            "Disk errors: media, error-log entries, reallocated, pending",
        )
        meter.create_observable_gauge(hm.HW_TEMPERATURE, [self._temperature], "Cel", "Disk temperature")
        meter.create_observable_gauge(
            hm.HW_PHYSICAL_DISK_ENDURANCE_UTILIZATION,
            [self._endurance],
            "1",
            "Endurance remaining (1 - NVMe percentage used, floored at 0)",
        )
        meter.create_observable_up_down_counter(hm.HW_PHYSICAL_DISK_SIZE, [self._size], "By", "Disk capacity")
        meter.create_observable_gauge(
            hm.HW_PHYSICAL_DISK_SMART, [self._smart], "1", "Normalized value of each ATA SMART attribute"
        )
        meter.create_observable_gauge(
            CRITICAL_WARNING, [self._critical], "1", "NVMe critical warning bits (0: none)"
        )
        meter.create_observable_gauge(
            PERCENTAGE_USED, [self._used], "%", "NVMe estimate of the endurance used (may exceed 100)"
        )
        meter.create_observable_gauge(SPARE, [self._spare], "1", "NVMe spare capacity remaining")
        meter.create_observable_gauge(
            SPARE_THRESHOLD, [self._spare_threshold], "1", "NVMe spare capacity below which it warns"
        )
        meter.create_observable_counter(POWER_ON, [self._power_on], "s", "Time the disk has been powered on")

    def _disks(self) -> Iterable[Health]:
        return ({} if self.snapshot is None else self.snapshot).values()

    def _status(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            attrs = {
                **DISK,
                HW_ID: disk.id,
                HW_MODEL: disk.model or "unknown",
                HW_SERIAL_NUMBER: disk.serial or "unknown",
            }
            for state in STATES:
                yield Observation(1 if disk.state == state else 0, {**attrs, HW_STATE: state})

    def _errors(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            for kind, n in disk.errors.items():
                yield Observation(n, {**DISK, HW_ID: disk.id, ERROR_TYPE: kind})

    def _temperature(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.temperature is not None:
                yield Observation(disk.temperature, {**DISK, HW_ID: disk.id})

    def _endurance(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.percentage_used is not None:
                remaining = max(0.0, 1 - disk.percentage_used / 100)
                yield Observation(remaining, {**DISK, HW_ID: disk.id, HW_PHYSICAL_DISK_STATE: "remaining"})

    def _size(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.size is not None:
                yield Observation(disk.size, {**DISK, HW_ID: disk.id})

    def _smart(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            for name, value in disk.attributes.items():
                yield Observation(value, {**DISK, HW_ID: disk.id, HW_PHYSICAL_DISK_SMART_ATTRIBUTE: name})

    def _critical(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.critical_warning is not None:
                yield Observation(disk.critical_warning, {**DISK, HW_ID: disk.id})

    def _used(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.percentage_used is not None:
                yield Observation(disk.percentage_used, {**DISK, HW_ID: disk.id})

    def _spare(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.available_spare is not None:
                yield Observation(disk.available_spare, {**DISK, HW_ID: disk.id})

    def _spare_threshold(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.available_spare_threshold is not None:
                yield Observation(disk.available_spare_threshold, {**DISK, HW_ID: disk.id})

    def _power_on(self, _: CallbackOptions) -> Iterable[Observation]:
        for disk in self._disks():
            if disk.power_on_seconds is not None:
                yield Observation(disk.power_on_seconds, {**DISK, HW_ID: disk.id})
