# ruff: noqa: N801, N803, N815, N816 - names, structures and arguments are NVML's (pynvml)
"""A fake NVML binding with the names, signatures, structures and error classes of nvidia-ml-py.

Built from NVML's documented behaviour (nvml.h and the `pynvml` wrapper): strings come back as
`str`, power in mW, energy in mJ, PCIe throughput in KB/s, clocks in MHz, errors are `NVMLError`
subclasses carrying the nvmlReturn_t code in `.value`, functions called before `nvmlInit()` raise
`NVMLError_Uninitialized`, `nvmlEventSetWait` raises `NVMLError_Timeout` when nothing is queued.

Use it as a module (`SYSOPS_GPU__NVML_MODULE=tests.fakes.fake_nvml`: the module-level functions act
on a default fleet of four GPUs) or as an object (`FakeNvml(gpus)`) passed to the collector.

The default fleet:
  0  healthy A100: ECC, remapped rows, two NVLinks, two compute processes, Xid events
  1  hot (97 °C), thermal + power throttling, 99 % memory, uncorrectable ECC, a failed row remap
  2  GeForce without ECC, page retirement, row remapping, NVLink or events (NotSupported)
  3  fallen off the bus: every query, even its handle, raises NVMLError_GpuIsLost
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from instrumentation._nvml import NvmlModule

_T = TypeVar("_T")

# nvmlReturn_t (nvml.h)
NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0
NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1
NVML_NVLINK_MAX_LINKS = 36
NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX = 138
NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX = 139
nvmlEventTypeXidCriticalError = 0x0000000000000008
nvmlClocksEventReasonGpuIdle = 0x1
nvmlClocksEventReasonSwPowerCap = 0x4
nvmlClocksEventReasonHwSlowdown = 0x8
nvmlClocksEventReasonSwThermalSlowdown = 0x20
nvmlClocksEventReasonHwThermalSlowdown = 0x40


class NVMLError(Exception):
    """Base of NVML errors; `NVMLError(code)` builds the subclass for `code`, as pynvml does."""

    value = NVML_ERROR_UNKNOWN
    _by_code: dict[int, type[NVMLError]] = {}

    def __new__(cls, value: int | None = None) -> NVMLError:
        target = NVMLError._by_code.get(value, cls) if cls is NVMLError and value is not None else cls
        obj = Exception.__new__(target)
        if value is not None:
            obj.value = value
        return obj

    def __init__(self, value: int | None = None) -> None:
        super().__init__(self.value if value is None else value)

    def __str__(self) -> str:
        return f"{type(self).__name__.removeprefix('NVMLError_')} (NVML error {self.value})"


def _error_class(name: str, code: int) -> type[NVMLError]:
    cls = type(name, (NVMLError,), {"value": code})
    NVMLError._by_code[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_Timeout = _error_class("NVMLError_Timeout", NVML_ERROR_TIMEOUT)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_FunctionNotFound = _error_class("NVMLError_FunctionNotFound", NVML_ERROR_FUNCTION_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


# -- structures (attribute names as in pynvml's ctypes structures) -----------------------------


@dataclass
class c_nvmlUtilization_t:
    gpu: int
    memory: int


@dataclass
class c_nvmlMemory_t:
    total: int
    free: int
    used: int


@dataclass
class nvmlPciInfo_t:
    busId: str
    busIdLegacy: str
    domain: int
    bus: int
    device: int
    pciDeviceId: int = 0x20B010DE
    pciSubSystemId: int = 0


@dataclass
class nvmlFriendlyObject:
    """pynvml returns processes as "friendly objects" with the struct's fields as attributes."""

    pid: int
    usedGpuMemory: int | None
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class c_nvmlValue_t:
    ullVal: int = 0


@dataclass
class c_nvmlFieldValue_t:
    fieldId: int
    scopeId: int
    timestamp: int = 0
    latencyUsec: int = 0
    valueType: int = 3  # NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
    nvmlReturn: int = NVML_SUCCESS
    value: c_nvmlValue_t = field(default_factory=c_nvmlValue_t)


@dataclass
class c_nvmlEventData_t:
    device: Any
    eventType: int
    eventData: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass(frozen=True)
class FakeHandle:
    """nvmlDevice_t: an opaque handle."""

    index: int


@dataclass
class FakeLink:
    active: bool = True
    tx_kib: int = 0
    rx_kib: int = 0
    errors: dict[int, int] = field(default_factory=dict)  # NVML_NVLINK_ERROR_DL_* -> count


@dataclass
class FakeGpu:
    """One simulated GPU; None for a query means the device answers NVMLError_NotSupported."""

    name: str
    uuid: str
    serial: str
    bus_id: str
    vbios: str = "92.00.45.00.03"
    memory_total: int = 40 * 1024**3
    memory_used: int = 4 * 1024**3
    util_gpu: int = 30
    util_memory: int = 12
    encoder: int | None = 0
    decoder: int | None = 0
    temperature: int = 45
    power_mw: int = 120_000
    energy_mj: int = 5_000_000
    sm_mhz: int = 1410
    mem_mhz: int = 1215
    fan: int | None = None
    pcie_tx_kbps: int = 2000
    pcie_rx_kbps: int = 8000
    pcie_replays: int = 0
    clock_events: int = 0
    # (error type, counter type) -> count
    ecc: dict[tuple[int, int], int] | None = field(default_factory=dict)
    retired_pages: dict[int, list[int]] | None = None  # cause -> page addresses
    retired_pending: int | None = None
    remapped_rows: tuple[int, int, int, int] | None = (0, 0, 0, 0)
    nvlinks: list[FakeLink] | None = None
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    xid_events: bool = True
    lost: bool = False
    # Functions that fail on this device with NVMLError_Unknown (a flaky query).
    failing: set[str] = field(default_factory=set)


def default_gpus() -> list[FakeGpu]:
    """Return the default fleet (see the module docstring)."""
    gib = 1024**3
    return [
        FakeGpu(
            name="NVIDIA A100-SXM4-40GB",
            uuid="GPU-11111111-2222-3333-4444-555555555555",
            serial="1560221000001",
            bus_id="00000000:07:00.0",
            fan=None,
            ecc={(0, 0): 3, (1, 0): 0, (0, 1): 17, (1, 1): 0},
            nvlinks=[
                FakeLink(tx_kib=1000, rx_kib=2000, errors={0: 1, 1: 0, 2: 0, 3: 0}),
                FakeLink(tx_kib=3000, rx_kib=4000),
                FakeLink(active=False),
            ],
            processes=[(4242, 3 * gib), (4343, gib // 2), (4444, None)],
        ),
        FakeGpu(
            name="NVIDIA A100-SXM4-40GB",
            uuid="GPU-66666666-7777-8888-9999-000000000000",
            serial="1560221000002",
            bus_id="00000000:0F:00.0",
            memory_used=int(39.6 * gib),
            util_gpu=100,
            util_memory=87,
            temperature=97,
            power_mw=400_000,
            sm_mhz=1005,
            clock_events=nvmlClocksEventReasonSwPowerCap | nvmlClocksEventReasonHwThermalSlowdown,
            ecc={(0, 0): 120, (1, 0): 2, (0, 1): 500, (1, 1): 2},
            remapped_rows=(1, 2, 0, 1),
            nvlinks=[FakeLink(tx_kib=10, rx_kib=20)],
        ),
        FakeGpu(
            name="NVIDIA GeForce RTX 4090",
            uuid="GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
            serial="0",
            bus_id="00000000:41:00.0",
            memory_total=24 * gib,
            memory_used=2 * gib,
            encoder=25,
            decoder=40,
            fan=55,
            ecc=None,
            remapped_rows=None,
            xid_events=False,
        ),
        FakeGpu(
            name="NVIDIA A100-SXM4-40GB",
            uuid="GPU-deadbeef-0000-0000-0000-000000000000",
            serial="1560221000004",
            bus_id="00000000:87:00.0",
            lost=True,
        ),
    ]


class _EventSet:
    def __init__(self) -> None:
        self.queue: list[c_nvmlEventData_t] = []
        self.registered: dict[int, int] = {}  # gpu index -> event types


class FakeNvml:
    """The NVML API over a list of FakeGpu; every call is counted in `calls[(function, index)]`."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu] | None = None, *, init_error: int | None = None) -> None:
        self.gpus = default_gpus() if gpus is None else gpus
        self.init_error = init_error
        self.initialized = 0  # NVML counts nvmlInit/nvmlShutdown pairs
        self.calls: Counter[tuple[str, int | None]] = Counter()
        self.event_sets: list[_EventSet] = []
        self.driver_version = "550.54.15"
        self._lock = threading.Lock()

    # -- helpers the tests use -----------------------------------------------------------------

    def emit_xid(self, index: int, xid: int) -> None:
        """Queue an Xid critical-error event of GPU `index` on every event set registered for it."""
        for event_set in self.event_sets:
            if event_set.registered.get(index, 0) & nvmlEventTypeXidCriticalError:
                event_set.queue.append(
                    c_nvmlEventData_t(FakeHandle(index), nvmlEventTypeXidCriticalError, xid)
                )

    def _count(self, fn: str, index: int | None = None) -> None:
        with self._lock:
            self.calls[(fn, index)] += 1
        if not self.initialized:
            raise NVMLError_Uninitialized()

    def _gpu(self, fn: str, handle: FakeHandle) -> FakeGpu:
        self._count(fn, handle.index)
        gpu = self.gpus[handle.index]
        if gpu.lost:
            raise NVMLError_GpuIsLost()
        if fn in gpu.failing:
            raise NVMLError_Unknown()
        return gpu

    @staticmethod
    def _supported(value: _T | None) -> _T:
        if value is None:
            raise NVMLError_NotSupported()
        return value

    # -- init ----------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls[("nvmlInit", None)] += 1
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialized += 1

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        self.initialized -= 1
        if not self.initialized:
            # The last shutdown frees NVML's resources: event sets stop receiving events.
            for event_set in self.event_sets:
                event_set.registered.clear()

    def nvmlSystemGetDriverVersion(self) -> str:
        self._count("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._count("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._count("nvmlDeviceGetHandleByIndex", index)
        if not 0 <= index < len(self.gpus):
            raise NVMLError_InvalidArgument()
        if self.gpus[index].lost:
            raise NVMLError_GpuIsLost()
        return FakeHandle(index)

    # -- identity ------------------------------------------------------------------------------

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        return self._gpu("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        return self._gpu("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetSerial(self, handle: FakeHandle) -> str:
        return self._gpu("nvmlDeviceGetSerial", handle).serial

    def nvmlDeviceGetVbiosVersion(self, handle: FakeHandle) -> str:
        return self._gpu("nvmlDeviceGetVbiosVersion", handle).vbios

    def nvmlDeviceGetPciInfo(self, handle: FakeHandle) -> nvmlPciInfo_t:
        gpu = self._gpu("nvmlDeviceGetPciInfo", handle)
        domain, bus, rest = gpu.bus_id.split(":")
        return nvmlPciInfo_t(
            busId=gpu.bus_id,
            busIdLegacy=gpu.bus_id[4:],
            domain=int(domain, 16),
            bus=int(bus, 16),
            device=int(rest.split(".")[0], 16),
        )

    # -- readings ------------------------------------------------------------------------------

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> c_nvmlUtilization_t:
        gpu = self._gpu("nvmlDeviceGetUtilizationRates", handle)
        return c_nvmlUtilization_t(gpu.util_gpu, gpu.util_memory)

    def nvmlDeviceGetEncoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetEncoderUtilization", handle)
        return [self._supported(gpu.encoder), 167_000]  # [utilization %, sampling period µs]

    def nvmlDeviceGetDecoderUtilization(self, handle: FakeHandle) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetDecoderUtilization", handle)
        return [self._supported(gpu.decoder), 167_000]

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle, version: int | None = None) -> c_nvmlMemory_t:
        gpu = self._gpu("nvmlDeviceGetMemoryInfo", handle)
        return c_nvmlMemory_t(gpu.memory_total, gpu.memory_total - gpu.memory_used, gpu.memory_used)

    def nvmlDeviceGetTemperature(self, handle: FakeHandle, sensor: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTemperature", handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError_InvalidArgument()
        return gpu.temperature

    def nvmlDeviceGetPowerUsage(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj

    def nvmlDeviceGetClockInfo(self, handle: FakeHandle, type: int) -> int:
        gpu = self._gpu("nvmlDeviceGetClockInfo", handle)
        clocks = {NVML_CLOCK_GRAPHICS: gpu.sm_mhz, NVML_CLOCK_SM: gpu.sm_mhz, NVML_CLOCK_MEM: gpu.mem_mhz}
        if type not in clocks:
            raise NVMLError_InvalidArgument()
        return clocks[type]

    def nvmlDeviceGetFanSpeed(self, handle: FakeHandle) -> int:
        return self._supported(self._gpu("nvmlDeviceGetFanSpeed", handle).fan)

    def nvmlDeviceGetPcieThroughput(self, device: FakeHandle, counter: int) -> int:
        gpu = self._gpu("nvmlDeviceGetPcieThroughput", device)
        return {NVML_PCIE_UTIL_TX_BYTES: gpu.pcie_tx_kbps, NVML_PCIE_UTIL_RX_BYTES: gpu.pcie_rx_kbps}[counter]

    def nvmlDeviceGetPcieReplayCounter(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetPcieReplayCounter", handle).pcie_replays

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksEventReasons", handle).clock_events

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeHandle) -> int:
        return self._gpu("nvmlDeviceGetCurrentClocksThrottleReasons", handle).clock_events

    def nvmlDeviceGetTotalEccErrors(self, handle: FakeHandle, errorType: int, counterType: int) -> int:
        gpu = self._gpu("nvmlDeviceGetTotalEccErrors", handle)
        return self._supported(gpu.ecc).get((errorType, counterType), 0)

    def nvmlDeviceGetRetiredPages(self, device: FakeHandle, sourceFilter: int) -> list[int]:
        gpu = self._gpu("nvmlDeviceGetRetiredPages", device)
        return list(self._supported(gpu.retired_pages).get(sourceFilter, []))

    def nvmlDeviceGetRetiredPagesPendingStatus(self, device: FakeHandle) -> int:
        return self._supported(self._gpu("nvmlDeviceGetRetiredPagesPendingStatus", device).retired_pending)

    def nvmlDeviceGetRemappedRows(self, device: FakeHandle) -> tuple[int, int, int, int]:
        return self._supported(self._gpu("nvmlDeviceGetRemappedRows", device).remapped_rows)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeHandle) -> list[nvmlFriendlyObject]:
        gpu = self._gpu("nvmlDeviceGetComputeRunningProcesses", handle)
        return [nvmlFriendlyObject(pid, used) for pid, used in gpu.processes]

    # -- NVLink --------------------------------------------------------------------------------

    def _link(self, fn: str, device: FakeHandle, link: int) -> FakeLink:
        links = self._supported(self._gpu(fn, device).nvlinks)
        if not 0 <= link < NVML_NVLINK_MAX_LINKS:
            raise NVMLError_InvalidArgument()
        if link >= len(links):
            raise NVMLError_NotSupported()
        return links[link]

    def nvmlDeviceGetNvLinkState(self, device: FakeHandle, link: int) -> int:
        return int(self._link("nvmlDeviceGetNvLinkState", device, link).active)

    def nvmlDeviceGetNvLinkErrorCounter(self, device: FakeHandle, link: int, counter: int) -> int:
        return self._link("nvmlDeviceGetNvLinkErrorCounter", device, link).errors.get(counter, 0)

    def nvmlDeviceGetFieldValues(self, handle: FakeHandle, fieldIds: list[Any]) -> list[c_nvmlFieldValue_t]:
        gpu = self._gpu("nvmlDeviceGetFieldValues", handle)
        out = []
        for item in fieldIds:
            fid, scope = item if isinstance(item, tuple) else (item, 0)
            value = c_nvmlFieldValue_t(fid, scope)
            links = gpu.nvlinks or []
            if scope >= len(links) or fid not in (
                NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX,
                NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX,
            ):
                value.nvmlReturn = NVML_ERROR_NOT_SUPPORTED
            else:
                link = links[scope]
                value.value.ullVal = (
                    link.tx_kib if fid == NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX else link.rx_kib
                )
            out.append(value)
        return out

    # -- events --------------------------------------------------------------------------------

    def nvmlEventSetCreate(self) -> _EventSet:
        self._count("nvmlEventSetCreate")
        event_set = _EventSet()
        self.event_sets.append(event_set)
        return event_set

    def nvmlDeviceRegisterEvents(self, handle: FakeHandle, eventTypes: int, eventSet: _EventSet) -> None:
        gpu = self._gpu("nvmlDeviceRegisterEvents", handle)
        if not gpu.xid_events:
            raise NVMLError_NotSupported()
        eventSet.registered[handle.index] = eventSet.registered.get(handle.index, 0) | eventTypes

    def nvmlEventSetWait(self, eventSet: _EventSet, timeoutms: int) -> c_nvmlEventData_t:
        self._count("nvmlEventSetWait")
        if not eventSet.queue:
            raise NVMLError_Timeout()
        return eventSet.queue.pop(0)

    def nvmlEventSetFree(self, eventSet: _EventSet) -> None:
        self._count("nvmlEventSetFree")
        if eventSet in self.event_sets:
            self.event_sets.remove(eventSet)


# The module-level API acts on one default fleet, so the module itself can be injected by name.
default = FakeNvml()


def reset(gpus: list[FakeGpu] | None = None) -> FakeNvml:
    """Replace the module's default fleet (a fresh default one when `gpus` is None)."""
    global default  # noqa: PLW0603 - the module stands in for a C library's global state
    default = FakeNvml(gpus)
    return default


def as_nvml(fake: FakeNvml) -> NvmlModule:
    """Type `fake` as the collector's NvmlModule, as `load_nvml` types the real binding.

    The fake keeps pynvml's own signatures (its argument names, concrete handle and event-set
    classes), which the collector's Protocol deliberately does not spell, so it can only be
    checked structurally at runtime, like pynvml itself.
    """
    return cast("NvmlModule", fake)


def __getattr__(name: str) -> Any:
    if name.startswith("nvml"):
        return getattr(default, name)
    raise AttributeError(name)
