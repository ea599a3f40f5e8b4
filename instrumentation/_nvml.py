# ruff: noqa: N802, N815 - the names are NVML's (nvml.h, pynvml), matched by the real binding
"""The NVML binding as the GPU collector sees it: a Protocol, its loader, and NVML's error codes.

The functions, structures and codes are those of NVIDIA's `nvidia-ml-py` (`import pynvml`), which
wraps the C API one to one (nvml.h). Any module with the same names can stand in for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, cast

from otel_sysops.errors import CollectorUnavailableError

# nvmlReturn_t (nvml.h); pynvml raises NVMLError subclasses carrying these in `.value`.
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NO_PERMISSION = 4
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
TIMEOUT = 10
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18

# Errors at nvmlInit() that mean "no usable NVIDIA driver on this host".
UNAVAILABLE_AT_INIT = frozenset(
    {DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, FUNCTION_NOT_FOUND, NO_PERMISSION, LIB_RM_VERSION_MISMATCH}
)
# Errors meaning the device cannot answer this query now or ever (remembered per device).
UNSUPPORTED = frozenset({NOT_SUPPORTED, FUNCTION_NOT_FOUND})
# Errors meaning the device itself is gone (fell off the bus, needs a reset).
LOST = frozenset({GPU_IS_LOST, RESET_REQUIRED})

# Enumerations of nvml.h used by the collector.
TEMPERATURE_GPU = 0
CLOCK_SM = 1
CLOCK_MEM = 2
PCIE_UTIL_TX_BYTES = 0
PCIE_UTIL_RX_BYTES = 1
MEMORY_ERROR_TYPE_CORRECTED = 0
MEMORY_ERROR_TYPE_UNCORRECTED = 1
VOLATILE_ECC = 0
AGGREGATE_ECC = 1
PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0
PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1
NVLINK_ERROR_DL_REPLAY = 0
NVLINK_ERROR_DL_RECOVERY = 1
NVLINK_ERROR_DL_CRC_FLIT = 2
NVLINK_ERROR_DL_CRC_DATA = 3
FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138  # KiB, cumulative, scope = link
FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139
EVENT_TYPE_XID_CRITICAL_ERROR = 0x0000000000000008

# nvmlClocksEventReason* bits (nvml.h); the same bits as the older nvmlClocksThrottleReason*.
CLOCK_EVENT_REASONS: dict[str, int] = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


class Utilization(Protocol):
    """nvmlUtilization_t: percent of the last sample period the GPU / its memory was busy."""

    gpu: int
    memory: int


class Memory(Protocol):
    """nvmlMemory_t, in bytes."""

    total: int
    used: int
    free: int


class PciInfo(Protocol):
    """nvmlPciInfo_t; `busId` is "DDDDDDDD:BB:DD.F" (bytes or str depending on the binding)."""

    busId: bytes | str


class ProcessInfo(Protocol):
    """nvmlProcessInfo_t; `usedGpuMemory` is None where the driver cannot tell (WDDM)."""

    pid: int
    usedGpuMemory: int | None


class EventData(Protocol):
    """nvmlEventData_t: the device, the event type bit and its data (the Xid code for Xid events)."""

    device: object
    eventType: int
    eventData: int


class FieldValueUnion(Protocol):
    ullVal: int


class FieldValue(Protocol):
    """nvmlFieldValue_t: one answer of nvmlDeviceGetFieldValues, with its own return code."""

    fieldId: int
    scopeId: int
    nvmlReturn: int
    value: FieldValueUnion


class NvmlModule(Protocol):
    """The subset of pynvml the GPU collector calls (names and signatures as in nvidia-ml-py)."""

    NVMLError: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> object: ...
    def nvmlDeviceGetName(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetSerial(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetVbiosVersion(self, handle: object) -> str | bytes: ...
    def nvmlDeviceGetPciInfo(self, handle: object) -> PciInfo: ...
    def nvmlDeviceGetUtilizationRates(self, handle: object) -> Utilization: ...
    def nvmlDeviceGetEncoderUtilization(self, handle: object) -> Sequence[int]: ...
    def nvmlDeviceGetDecoderUtilization(self, handle: object) -> Sequence[int]: ...
    def nvmlDeviceGetMemoryInfo(self, handle: object) -> Memory: ...
    def nvmlDeviceGetTemperature(self, handle: object, sensor: int) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: object) -> int: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int: ...
    def nvmlDeviceGetClockInfo(self, handle: object, clock_type: int) -> int: ...
    def nvmlDeviceGetFanSpeed(self, handle: object) -> int: ...
    def nvmlDeviceGetPcieThroughput(self, handle: object, counter: int) -> int: ...
    def nvmlDeviceGetPcieReplayCounter(self, handle: object) -> int: ...
    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: object) -> int: ...
    def nvmlDeviceGetTotalEccErrors(self, handle: object, error_type: int, counter_type: int) -> int: ...
    def nvmlDeviceGetRetiredPages(self, handle: object, cause: int) -> Sequence[int]: ...
    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: object) -> int: ...
    def nvmlDeviceGetRemappedRows(self, handle: object) -> tuple[int, int, int, int]: ...
    def nvmlDeviceGetComputeRunningProcesses(self, handle: object) -> Sequence[ProcessInfo]: ...
    def nvmlDeviceGetNvLinkState(self, handle: object, link: int) -> int: ...
    def nvmlDeviceGetNvLinkErrorCounter(self, handle: object, link: int, counter: int) -> int: ...
    def nvmlDeviceGetFieldValues(
        self, handle: object, field_ids: Sequence[tuple[int, int]]
    ) -> Sequence[FieldValue]: ...
    def nvmlEventSetCreate(self) -> object: ...
    def nvmlDeviceRegisterEvents(self, handle: object, event_types: int, event_set: object) -> None: ...
    def nvmlEventSetWait(self, event_set: object, timeout_ms: int) -> EventData: ...
    def nvmlEventSetFree(self, event_set: object) -> None: ...


def load_nvml(name: str) -> NvmlModule:
    """Import the NVML binding `name`; raise CollectorUnavailableError naming the fix when absent."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        hint = " (pip install 'otel-sysops[gpu]')" if name == "pynvml" else ""
        raise CollectorUnavailableError(f"NVML binding {name!r} is not installed{hint}") from exc
    if not isinstance(getattr(module, "NVMLError", None), type):
        raise CollectorUnavailableError(f"module {name!r} is not an NVML binding (no NVMLError)")
    return cast(NvmlModule, module)


def error_code(exc: BaseException) -> int | None:
    """Return the nvmlReturn_t code an NVMLError carries, or None for any other exception."""
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else None


def text(value: str | bytes) -> str:
    """Return a string NVML gave as bytes (old bindings) or str (nvidia-ml-py >= 11)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def sysfs_bus_id(nvml_bus_id: str) -> str:
    """Turn NVML's "00000000:3B:00.0" into the kernel's "0000:3b:00.0" (sysfs device name)."""
    domain, sep, rest = nvml_bus_id.strip().partition(":")
    if not sep:
        return nvml_bus_id.strip().lower()
    try:
        return f"{int(domain, 16):04x}:{rest.lower()}"
    except ValueError:
        return nvml_bus_id.strip().lower()
