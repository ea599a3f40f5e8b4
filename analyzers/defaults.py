"""The built-in rules: which metrics the threshold, trend and leak analyzers watch out of the box.

Each constant is explained in docs/analyzers.md. A rule in the settings file with the same metric
and matcher replaces the default; `enabled = false` switches one off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from opentelemetry.semconv._incubating.attributes.disk_attributes import DISK_IO_DIRECTION
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_ID, HW_NAME, HW_STATE, HW_TYPE
from opentelemetry.semconv._incubating.attributes.network_attributes import NETWORK_INTERFACE_NAME
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_DEVICE,
    SYSTEM_FILESYSTEM_MOUNTPOINT,
    SYSTEM_MEMORY_STATE,
    SYSTEM_PAGING_STATE,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hw
from opentelemetry.semconv._incubating.metrics import process_metrics as pm
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.settings import LeakRule, ThresholdRule, TrendRule

from ._common import describe_series

# Names with no semantic convention (emitted by our collectors, listed in docs/metrics.md).
CPU_BUSY = "sysops.cpu.busy"
INODES_UTILIZATION = "sysops.filesystem.inodes.utilization"
FD_UTILIZATION = "sysops.fd.utilization"
DISK_OPERATION_TIME_AVERAGE = "sysops.disk.operation_time.average"
TIME_SYNC = "sysops.time.sync.status"
CARRIER_FLAPS = "sysops.network.interface.carrier.flaps"
RAID_DEGRADED = "sysops.raid.degraded"
DISK_CRITICAL_WARNING = "sysops.disk.health.critical_warning"

_MINUTE = 60.0


def _rule(metric: str, warning: float | None, critical: float | None, **kw: object) -> ThresholdRule:
    return ThresholdRule.model_validate({"metric": metric, "warning": warning, "critical": critical, **kw})


DEFAULT_THRESHOLDS: tuple[ThresholdRule, ...] = (
    # A busy CPU is normal for minutes at a time; alert when it stays busy.
    _rule(CPU_BUSY, 0.80, 0.90, hysteresis=0.05, **{"for": 5 * _MINUTE}, display="percent"),
    _rule(
        sm.SYSTEM_MEMORY_UTILIZATION,
        0.85,
        0.95,
        match={SYSTEM_MEMORY_STATE: "used"},
        hysteresis=0.03,
        **{"for": 2 * _MINUTE},
        display="percent",
    ),
    # Disks fill slowly and do not empty by themselves: no hold time needed.
    _rule(sm.SYSTEM_FILESYSTEM_UTILIZATION, 0.80, 0.90, hysteresis=0.02, display="percent"),
    _rule(INODES_UTILIZATION, 0.80, 0.90, hysteresis=0.02, display="percent"),
    _rule(
        sm.SYSTEM_PAGING_UTILIZATION,
        0.50,
        0.80,
        match={SYSTEM_PAGING_STATE: "used"},
        hysteresis=0.05,
        **{"for": 5 * _MINUTE},
        display="percent",
    ),
    _rule(FD_UTILIZATION, 0.80, 0.90, hysteresis=0.03, **{"for": _MINUTE}, display="percent"),
    # Average time per completed I/O above 100 ms means the device is saturated or failing.
    _rule(
        DISK_OPERATION_TIME_AVERAGE, 0.100, None, hysteresis=0.020, **{"for": 5 * _MINUTE}, display="seconds"
    ),
    _rule(
        hw.HW_TEMPERATURE,
        85.0,
        95.0,
        match={HW_TYPE: "temperature", "hw.sensor_location": "gpu"},
        hysteresis=3.0,
        **{"for": _MINUTE},
        display="celsius",
    ),
    _rule(
        hw.HW_GPU_MEMORY_UTILIZATION, 0.90, 0.98, hysteresis=0.02, **{"for": 2 * _MINUTE}, display="percent"
    ),
    # The kernel marks the clock unsynchronised (no NTP/PTP daemon disciplining it) for 10 minutes.
    _rule(TIME_SYNC, 0.5, None, comparison="<", **{"for": 10 * _MINUTE}, display="number"),
    # A physical adapter or bond that is administratively up has lost its link.
    _rule(hw.HW_NETWORK_UP, None, 0.5, comparison="<", **{"for": 30.0}, display="number"),
    # Two flaps (four carrier changes) within five minutes.
    _rule(CARRIER_FLAPS, 4, None, comparison=">=", display="number"),
    # A software RAID array runs with fewer members in sync than it is made of.
    _rule(RAID_DEGRADED, None, 0.5, display="number"),
    # Disk health: an NVMe critical warning bit, a FAILED SMART verdict, media errors, wear.
    _rule(DISK_CRITICAL_WARNING, None, 0.5, display="number"),
    _rule(hw.HW_STATUS, None, 0.5, match={HW_TYPE: "physical_disk", HW_STATE: "failed"}, display="number"),
    _rule(hw.HW_ERRORS, 0.5, None, match={HW_TYPE: "physical_disk", ERROR_TYPE: "media"}, display="number"),
    _rule(
        hw.HW_PHYSICAL_DISK_ENDURANCE_UTILIZATION,
        0.10,
        0.03,
        comparison="<",
        match={"hw.physical_disk.state": "remaining"},
        display="percent",
    ),
)

DEFAULT_TRENDS: tuple[TrendRule, ...] = (
    TrendRule(metric=sm.SYSTEM_FILESYSTEM_UTILIZATION),
    TrendRule(metric=INODES_UTILIZATION),
    TrendRule(metric=sm.SYSTEM_MEMORY_UTILIZATION, match={SYSTEM_MEMORY_STATE: "used"}),
    TrendRule(metric=sm.SYSTEM_PAGING_UTILIZATION, match={SYSTEM_PAGING_STATE: "used"}),
    TrendRule(metric=FD_UTILIZATION),
)

DEFAULT_LEAKS: tuple[LeakRule, ...] = (
    # 32 MB of growth at least: allocator noise and caches warming up stay below it.
    LeakRule(metric=pm.PROCESS_MEMORY_USAGE, min_increase=32e6, display="bytes"),
    LeakRule(metric=pm.PROCESS_UNIX_FILE_DESCRIPTOR_COUNT, min_increase=32),
)

R = TypeVar("R", ThresholdRule, TrendRule, LeakRule)


def merged(defaults: tuple[R, ...], user: list[R], use_defaults: bool = True) -> list[R]:
    """Return the defaults with user rules replacing those of the same metric and matcher, then the rest."""
    rules: dict[tuple[str, tuple[tuple[str, str], ...]], R] = {}
    chain: list[R] = list(defaults) if use_defaults else []
    chain.extend(user)
    for item in chain:
        rules[(item.metric, tuple(sorted(item.match.items())))] = item
    return [r for r in rules.values() if r.enabled]


def subject(metric: str, attrs: Mapping[str, str]) -> str:
    """Name what a default rule watches the way an operator says it ('filesystem /var', 'GPU 0')."""
    mount = attrs.get(SYSTEM_FILESYSTEM_MOUNTPOINT)
    device = attrs.get(SYSTEM_DEVICE)
    gpu = attrs.get("hw.parent") or attrs.get(HW_ID) or attrs.get(HW_NAME)
    direction = attrs.get(DISK_IO_DIRECTION)
    named = {
        CPU_BUSY: "CPU busy time",
        sm.SYSTEM_MEMORY_UTILIZATION: "memory used",
        sm.SYSTEM_PAGING_UTILIZATION: "swap used",
        FD_UTILIZATION: "file descriptors in use",
    }
    if mount:
        named[sm.SYSTEM_FILESYSTEM_UTILIZATION] = f"filesystem {mount}"
        named[INODES_UTILIZATION] = f"inodes of {mount}"
    if device:
        named[DISK_OPERATION_TIME_AVERAGE] = (
            f"disk {device} average {direction + ' ' if direction else ''}time per operation"
        )
    iface = attrs.get(NETWORK_INTERFACE_NAME)
    named[TIME_SYNC] = "clock synchronisation"
    if iface:
        named[hw.HW_NETWORK_UP] = f"link of {iface}"
        named[CARRIER_FLAPS] = f"carrier changes of {iface} in 5 min"
    if "sysops.raid.array" in attrs:
        named[RAID_DEGRADED] = f"RAID array {attrs['sysops.raid.array']} degraded"
    disk = attrs.get(HW_ID) if attrs.get(HW_TYPE) == "physical_disk" else None
    if disk:
        named[DISK_CRITICAL_WARNING] = f"disk {disk} critical warning"
        named[hw.HW_STATUS] = f"disk {disk} health"
        named[hw.HW_ERRORS] = f"disk {disk} media errors"
        named[hw.HW_PHYSICAL_DISK_ENDURANCE_UTILIZATION] = f"disk {disk} endurance remaining"
    if gpu:
        named[hw.HW_TEMPERATURE] = f"GPU {gpu} temperature"
        named[hw.HW_GPU_MEMORY_UTILIZATION] = f"GPU {gpu} memory used"
    return named.get(metric) or describe_series(metric, attrs)
