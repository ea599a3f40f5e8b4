"""Disk health from `smartctl --json` (smartmontools): the runner and the reading of its output.

smartctl's JSON output (smartctl(8) `--json`, smartmontools' JSON format version 1): `device`
{name, type, protocol}, `model_name`, `serial_number`, `user_capacity.bytes`, `smart_status.passed`,
`temperature.current` (Celsius), `power_on_time.hours`, for NVMe `nvme_smart_health_information_log`
(the NVMe base specification's SMART / Health Information log page, 02h: critical_warning,
temperature, available_spare, available_spare_threshold, percentage_used, media_errors,
num_err_log_entries, unsafe_shutdowns), for ATA `ata_smart_attributes.table` (id, name, value,
worst, thresh, raw.value). `smartctl.exit_status` is a bit mask: bits 0-1 (bad command line,
device open failed) mean no reading; bit 3 is the FAILED verdict, which `smart_status` also gives.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any, Protocol

# smartctl(8) EXIT STATUS bits 0 and 1: the command line did not parse, the device did not open.
_FATAL = 0b11
# ATA attribute ids reported as hw.errors, by error.type.
ATA_ERRORS = {5: "reallocated", 197: "pending", 198: "uncorrectable"}


class SmartctlRunner(Protocol):
    """Run smartctl with `--json` and the given arguments; return the parsed document."""

    def run(self, args: list[str]) -> dict[str, Any]: ...


class SubprocessSmartctl:
    """The real smartctl, bounded by a timeout; raise OSError when it cannot give a document."""

    def __init__(self, program: str, timeout: float) -> None:
        self.program, self.timeout = program, timeout

    def run(self, args: list[str]) -> dict[str, Any]:
        try:
            done = subprocess.run(  # noqa: S603 - the configured smartctl, arguments built here
                [self.program, "--json", *args],
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise OSError(f"smartctl {' '.join(args)} took more than {self.timeout:g} s") from exc
        try:
            doc = json.loads(done.stdout)
        except ValueError as exc:
            raise OSError(f"smartctl {' '.join(args)} printed no JSON (exit {done.returncode})") from exc
        if not isinstance(doc, dict):
            raise OSError(f"smartctl {' '.join(args)} printed a JSON {type(doc).__name__}")
        return doc


@dataclass(frozen=True, slots=True)
class Device:
    """One device from `smartctl --scan`."""

    name: str  # /dev/nvme0
    type: str  # nvme, sat, scsi, ...


def scan(doc: dict[str, Any]) -> list[Device]:
    """Return the devices of a `smartctl --json --scan` document."""
    items = doc.get("devices")
    return [
        Device(item["name"], item["type"])
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("type"), str)
    ]


@dataclass(slots=True)
class Health:
    """One device's health reading in plain units."""

    id: str  # nvme0, sda
    protocol: str | None = None  # NVMe, ATA, SCSI
    model: str | None = None
    serial: str | None = None
    passed: bool | None = None
    critical_warning: int | None = None
    temperature: float | None = None
    power_on_seconds: float | None = None
    percentage_used: int | None = None
    available_spare: float | None = None  # ratio
    available_spare_threshold: float | None = None  # ratio
    size: int | None = None
    errors: dict[str, int] = field(default_factory=dict)  # error.type -> count
    attributes: dict[str, int] = field(default_factory=dict)  # ATA attribute name -> normalized value

    @property
    def state(self) -> str:
        """hw.state: failed (the SMART verdict), degraded (an NVMe critical warning without it), else ok."""
        if self.passed is False:
            return "failed"
        if self.critical_warning:
            return "degraded"
        return "ok"


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def health(doc: dict[str, Any], device: Device) -> Health | None:
    """Return the health a `smartctl --json -i -H -A` document reports; None when it has no reading."""
    status = _int((doc.get("smartctl") or {}).get("exit_status"))
    if status is not None and status & _FATAL:
        return None
    out = Health(device.name.rsplit("/", 1)[-1])
    dev = doc.get("device") or {}
    out.protocol = dev.get("protocol") if isinstance(dev.get("protocol"), str) else None
    out.model = doc.get("model_name") if isinstance(doc.get("model_name"), str) else None
    out.serial = doc.get("serial_number") if isinstance(doc.get("serial_number"), str) else None
    passed = (doc.get("smart_status") or {}).get("passed")
    out.passed = passed if isinstance(passed, bool) else None
    temperature = _int((doc.get("temperature") or {}).get("current"))
    out.temperature = float(temperature) if temperature is not None else None
    hours = _int((doc.get("power_on_time") or {}).get("hours"))
    out.power_on_seconds = hours * 3600.0 if hours is not None else None
    out.size = _int((doc.get("user_capacity") or {}).get("bytes"))
    nvme = doc.get("nvme_smart_health_information_log")
    if isinstance(nvme, dict):
        out.critical_warning = _int(nvme.get("critical_warning"))
        out.percentage_used = _int(nvme.get("percentage_used"))
        spare, threshold = _int(nvme.get("available_spare")), _int(nvme.get("available_spare_threshold"))
        out.available_spare = spare / 100 if spare is not None else None
        out.available_spare_threshold = threshold / 100 if threshold is not None else None
        for key, kind in (("media_errors", "media"), ("num_err_log_entries", "error_log")):
            value = _int(nvme.get(key))
            if value is not None:
                out.errors[kind] = value
    table = (doc.get("ata_smart_attributes") or {}).get("table")
    for row in table if isinstance(table, list) else []:
        if not isinstance(row, dict):
            continue
        ident, name, value = _int(row.get("id")), row.get("name"), _int(row.get("value"))
        if isinstance(name, str) and value is not None:
            out.attributes[name] = value
        raw = _int((row.get("raw") or {}).get("value"))
        if ident in ATA_ERRORS and raw is not None:
            out.errors[ATA_ERRORS[ident]] = raw
    return out
