"""NVIDIA GPUs through NVML: utilization, memory, temperature, power, clocks, PCIe, ECC, retired
pages, remapped rows, NVLink, per-process memory and Xid events, one NVML pass per tick.

Names follow the semantic conventions' `hw.*` metrics (`hw.gpu.*`, `hw.temperature`, `hw.power`,
`hw.energy`, `hw.errors`, `hw.status` with `hw.type=gpu`); what they do not cover is `sysops.gpu.*`
(see docs/metrics.md and docs/gpu.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_TYPE, HwGpuTaskValues, HwStateValues

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from . import _nvml as nv
from ._gpu_identity import gpu_inventory, identify, init_nvml
from ._gpu_instruments import register_instruments
from ._gpu_model import GPU, GpuInfo, GpuReading, GpuSample, GpuSnapshot

__all__ = ["GpuCollector", "GpuInfo", "GpuReading", "GpuSnapshot", "gpu_inventory"]

_log = logging.getLogger(__name__)

T = TypeVar("T")

# NVML reports PCIe throughput in KB/s over a 20 ms sample (nvml.h: nvmlDeviceGetPcieThroughput).
_KB = 1024
_KIB = 1024
# Events read per tick at most, so a storm of events cannot stall the tick.
_MAX_EVENTS_PER_TICK = 256
_NVLINK_ERRORS = {
    "replay": nv.NVLINK_ERROR_DL_REPLAY,
    "recovery": nv.NVLINK_ERROR_DL_RECOVERY,
    "crc_flit": nv.NVLINK_ERROR_DL_CRC_FLIT,
    "crc_data": nv.NVLINK_ERROR_DL_CRC_DATA,
}
_ECC = {
    ("corrected", "volatile"): (nv.MEMORY_ERROR_TYPE_CORRECTED, nv.VOLATILE_ECC),
    ("uncorrected", "volatile"): (nv.MEMORY_ERROR_TYPE_UNCORRECTED, nv.VOLATILE_ECC),
    ("corrected", "aggregate"): (nv.MEMORY_ERROR_TYPE_CORRECTED, nv.AGGREGATE_ECC),
    ("uncorrected", "aggregate"): (nv.MEMORY_ERROR_TYPE_UNCORRECTED, nv.AGGREGATE_ECC),
}


@dataclass(slots=True)
class _Device:
    """What the collector keeps about one GPU across ticks."""

    index: int
    handle: object | None
    info: GpuInfo
    lost: bool = False
    # Queries this device answered "not supported": never asked again.
    unsupported: set[str] = field(default_factory=set)
    pcie_bytes: dict[str, float] = field(default_factory=dict)
    last_sample: float | None = None
    nvlinks: list[int] | None = None
    xid: Counter[int] = field(default_factory=Counter)
    events: bool = False


class _DeviceLostError(Exception):
    """NVML says this GPU is lost (fell off the bus) or needs a reset."""


class _UninitializedError(Exception):
    """NVML was shut down under us; re-initialize before the next query."""


class GpuCollector(Collector[GpuSnapshot]):
    """Every NVIDIA GPU NVML sees; one INFO line and off when there is no driver or binding."""

    def __init__(self, ctx: CollectorContext, nvml: nv.NvmlModule | None = None) -> None:
        super().__init__(ctx)
        cfg = ctx.settings.gpu
        if not cfg.enabled:
            raise CollectorUnavailableError("disabled by gpu.enabled = false")
        self._cfg = cfg
        self._nvml = nvml if nvml is not None else nv.load_nvml(cfg.nvml_module)
        init_nvml(self._nvml)
        self._open = True
        self._reinit = False
        self._event_set: object | None = None
        try:
            self._devices = self._discover({})
        except self._nvml.NVMLError as exc:
            self.close()
            raise CollectorUnavailableError(f"NVML cannot list GPUs: {exc}") from exc
        if not self._devices:
            self.close()
            raise CollectorUnavailableError("NVML sees no GPU")
        if cfg.xid_events:
            self._register_events()

    # -- discovery ---------------------------------------------------------------------------

    def _discover(self, previous: dict[str, _Device]) -> list[_Device]:
        """Enumerate the GPUs; carry over what was learnt about a GPU seen before (by UUID)."""
        devices = []
        for index in range(int(self._nvml.nvmlDeviceGetCount())):
            handle, info, lost = identify(self._nvml, index, self.ctx.sysfs)
            old = previous.get(info.uuid)
            dev = _Device(index, handle, info, lost=lost)
            if lost and (old is None or not old.lost):
                self._report_lost(dev)
            if old is not None:
                dev.unsupported, dev.pcie_bytes, dev.xid, dev.nvlinks = (
                    old.unsupported,
                    old.pcie_bytes,
                    old.xid,
                    old.nvlinks,
                )
            devices.append(dev)
        return devices

    def _register_events(self) -> None:
        """Register every GPU for Xid events; a GPU or driver without event support is skipped."""
        nvml = self._nvml
        try:
            event_set = nvml.nvmlEventSetCreate()
        except nvml.NVMLError as exc:
            _log.info("GPU Xid events unavailable: %s", exc)
            return
        for dev in self._devices:
            self._register_device(dev, event_set)
        if any(dev.events for dev in self._devices):
            self._event_set = event_set
        else:
            self._free_events(event_set)

    def _register_device(self, dev: _Device, event_set: object) -> None:
        if dev.handle is None or dev.lost:
            return
        try:
            self._nvml.nvmlDeviceRegisterEvents(dev.handle, nv.EVENT_TYPE_XID_CRITICAL_ERROR, event_set)
            dev.events = True
        except self._nvml.NVMLError as exc:
            _log.debug("GPU %s: no Xid events: %s", dev.info.uuid, exc)

    def _free_events(self, event_set: object) -> None:
        try:
            self._nvml.nvmlEventSetFree(event_set)
        except self._nvml.NVMLError as exc:
            _log.debug("nvmlEventSetFree: %s", exc)

    # -- sampling ----------------------------------------------------------------------------

    def _ask(self, dev: _Device, key: str, fn: Callable[..., T], *args: object) -> T | None:
        """Call one NVML query; None when unsupported (remembered) or failing (counted)."""
        if key in dev.unsupported:
            return None
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            code = nv.error_code(exc)
            if code in nv.UNSUPPORTED:
                dev.unsupported.add(key)
                return None
            if code in nv.LOST:
                raise _DeviceLostError(str(exc)) from exc
            if code == nv.UNINITIALIZED:
                raise _UninitializedError(str(exc)) from exc
            self.ctx.count_error(f"nvml_{code}")
            return None

    def sample(self, now: float) -> GpuSnapshot:
        if self._reinit:
            self._reinitialize()
        self._poll_events()
        gpus = []
        for dev in self._devices:
            try:
                reading = self._read(dev, now)
                dev.lost = False
            except _DeviceLostError:
                if not dev.lost:
                    self._report_lost(dev)
                dev.lost = True
                reading = GpuReading(state=HwStateValues.FAILED.value)
            except _UninitializedError:
                self._reinit = True
                self.ctx.count_error("nvml_uninitialized")
                continue
            except Exception as exc:  # noqa: BLE001 - one GPU's failure must not hide the others
                self.ctx.count_error(type(exc).__name__)
                _log.debug("GPU %s: %s", dev.info.uuid, exc)
                continue
            reading.xid = dict(dev.xid)
            attrs = dev.info.attributes()
            gpus.append(GpuSample(attrs, {**attrs, HW_TYPE: GPU}, reading, dev.info.sensor_attributes()))
        return GpuSnapshot(gpus)

    def _report_lost(self, dev: _Device) -> None:
        """Log and count a GPU becoming unreachable (once per loss, not once per tick)."""
        _log.error(
            "GPU %d %s (PCI %s) is lost: NVML cannot reach it",
            dev.index,
            dev.info.uuid,
            dev.info.pci_bus_id or "unknown",
        )
        self.ctx.count_error("gpu_lost")

    def _reinitialize(self) -> None:
        """Start NVML again after NVML_ERROR_UNINITIALIZED and find the GPUs again."""
        try:
            self._nvml.nvmlInit()
            self._devices = self._discover({d.info.uuid: d for d in self._devices})
        except self._nvml.NVMLError as exc:
            self.ctx.count_error("nvml_reinit")
            _log.debug("NVML re-initialization failed: %s", exc)
            return
        self._reinit = False
        # An event set does not survive NVML shutting down: register the GPUs again.
        if self._event_set is not None:
            self._free_events(self._event_set)
            self._event_set = None
        if self._cfg.xid_events:
            self._register_events()

    def _read(self, dev: _Device, now: float) -> GpuReading:
        """Ask every query of one GPU once."""
        if dev.handle is None:
            # Lost before it could even be enumerated: look again.
            handle, info, lost = identify(self._nvml, dev.index, self.ctx.sysfs)
            if lost or handle is None:
                raise _DeviceLostError("no handle")
            dev.handle, dev.info, dev.lost = handle, info, False
            if self._event_set is not None:
                self._register_device(dev, self._event_set)
        h, nvml, ask = dev.handle, self._nvml, self._ask
        r = GpuReading()
        util = ask(dev, "utilization", nvml.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            r.utilization[HwGpuTaskValues.GENERAL.value] = util.gpu / 100.0
            r.memory_busy = util.memory / 100.0
        enc = ask(dev, "encoder", nvml.nvmlDeviceGetEncoderUtilization, h)
        if enc is not None:
            r.utilization[HwGpuTaskValues.ENCODER.value] = enc[0] / 100.0
        dec = ask(dev, "decoder", nvml.nvmlDeviceGetDecoderUtilization, h)
        if dec is not None:
            r.utilization[HwGpuTaskValues.DECODER.value] = dec[0] / 100.0
        mem = ask(dev, "memory", nvml.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            r.memory_used, r.memory_total = int(mem.used), int(mem.total)
        temp = ask(dev, "temperature", nvml.nvmlDeviceGetTemperature, h, nv.TEMPERATURE_GPU)
        r.temperature = None if temp is None else float(temp)
        power = ask(dev, "power", nvml.nvmlDeviceGetPowerUsage, h)
        r.power = None if power is None else power / 1000.0  # mW
        energy = ask(dev, "energy", nvml.nvmlDeviceGetTotalEnergyConsumption, h)
        r.energy = None if energy is None else energy / 1000.0  # mJ
        for clock, kind in (("sm", nv.CLOCK_SM), ("memory", nv.CLOCK_MEM)):
            mhz = ask(dev, f"clock.{clock}", nvml.nvmlDeviceGetClockInfo, h, kind)
            if mhz is not None:
                r.clocks[clock] = mhz * 1e6
        fan = ask(dev, "fan", nvml.nvmlDeviceGetFanSpeed, h)
        r.fan = None if fan is None else fan / 100.0
        self._read_pcie(dev, r, now)
        reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        r.clock_events = ask(
            dev, "clock_events", reasons or nvml.nvmlDeviceGetCurrentClocksThrottleReasons, h
        )
        self._read_memory_health(dev, r)
        if self._cfg.nvlink_max_links:
            self._read_nvlink(dev, r)
        if self._cfg.top_processes:
            self._read_processes(dev, r)
        r.state = self._state(r)
        return r

    def _read_pcie(self, dev: _Device, r: GpuReading, now: float) -> None:
        h, nvml = dev.handle, self._nvml
        dt = None if dev.last_sample is None else max(0.0, now - dev.last_sample)
        dev.last_sample = now
        for direction, counter in (("transmit", nv.PCIE_UTIL_TX_BYTES), ("receive", nv.PCIE_UTIL_RX_BYTES)):
            kbps = self._ask(dev, f"pcie.{direction}", nvml.nvmlDeviceGetPcieThroughput, h, counter)
            if kbps is None:
                continue
            rate = kbps * _KB
            r.pcie_rate[direction] = rate
            # hw.gpu.io is a byte counter; NVML only gives a sampled rate, integrated over the tick.
            total = dev.pcie_bytes.get(direction, 0.0) + (rate * dt if dt is not None else 0.0)
            dev.pcie_bytes[direction] = r.pcie_bytes[direction] = total
        r.pcie_replays = self._ask(dev, "pcie.replays", nvml.nvmlDeviceGetPcieReplayCounter, h)

    def _read_memory_health(self, dev: _Device, r: GpuReading) -> None:
        """ECC counters, retired pages (pre-Ampere), remapped rows (Ampere and later)."""
        h, nvml, ask = dev.handle, self._nvml, self._ask
        for key, (error_type, counter) in _ECC.items():
            # One "not supported" (ECC off or absent) stands for all four counters.
            count = ask(dev, "ecc", nvml.nvmlDeviceGetTotalEccErrors, h, error_type, counter)
            if count is not None:
                r.ecc[key] = int(count)
        for cause, code in (
            ("multiple_single_bit", nv.PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
            ("double_bit", nv.PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR),
        ):
            pages = ask(dev, "retired_pages", nvml.nvmlDeviceGetRetiredPages, h, code)
            if pages is not None:
                r.retired[cause] = len(pages)
        pending = ask(dev, "retired_pages.pending", nvml.nvmlDeviceGetRetiredPagesPendingStatus, h)
        r.retired_pending = None if pending is None else int(bool(pending))
        rows = ask(dev, "remapped_rows", nvml.nvmlDeviceGetRemappedRows, h)
        if rows is not None:
            correctable, uncorrectable, pending_rows, failure = rows
            r.remapped = {"correctable": int(correctable), "uncorrectable": int(uncorrectable)}
            r.remap_pending, r.remap_failure = int(bool(pending_rows)), int(bool(failure))

    def _nvlink_topology(self, dev: _Device) -> list[int] | None:
        """Return the active NVLinks of a GPU ([] without NVLink); None after a transient failure."""
        nvml = self._nvml
        links = []
        for link in range(self._cfg.nvlink_max_links):
            try:
                state = nvml.nvmlDeviceGetNvLinkState(dev.handle, link)
            except nvml.NVMLError as exc:
                code = nv.error_code(exc)
                if code in nv.LOST:
                    raise _DeviceLostError(str(exc)) from exc
                if code == nv.UNINITIALIZED:
                    raise _UninitializedError(str(exc)) from exc
                if code in nv.UNSUPPORTED or code == nv.INVALID_ARGUMENT:
                    break  # no NVLink at all (link 0), or past the device's last link
                self.ctx.count_error(f"nvml_{code}")
                return None  # learn the topology on a later tick
            if state:
                links.append(link)
        return links

    def _read_nvlink(self, dev: _Device, r: GpuReading) -> None:
        h, nvml = dev.handle, self._nvml
        if dev.nvlinks is None:
            dev.nvlinks = self._nvlink_topology(dev)
        if not dev.nvlinks:
            return
        for link in dev.nvlinks:
            for kind, counter in _NVLINK_ERRORS.items():
                n = self._ask(
                    dev, f"nvlink.{link}.{kind}", nvml.nvmlDeviceGetNvLinkErrorCounter, h, link, counter
                )
                if n is not None:
                    r.nvlink_errors[(link, kind)] = int(n)
        fields = [
            (fid, link)
            for link in dev.nvlinks
            for fid in (nv.FI_DEV_NVLINK_THROUGHPUT_DATA_TX, nv.FI_DEV_NVLINK_THROUGHPUT_DATA_RX)
        ]
        values = self._ask(dev, "nvlink.throughput", nvml.nvmlDeviceGetFieldValues, h, fields)
        for value in values or ():
            if value.nvmlReturn != 0:
                continue
            direction = "transmit" if value.fieldId == nv.FI_DEV_NVLINK_THROUGHPUT_DATA_TX else "receive"
            r.nvlink_bytes[(int(value.scopeId), direction)] = int(value.value.ullVal) * _KIB

    def _read_processes(self, dev: _Device, r: GpuReading) -> None:
        procs = self._ask(dev, "processes", self._nvml.nvmlDeviceGetComputeRunningProcesses, dev.handle)
        if not procs:
            return
        known = [(int(p.pid), int(p.usedGpuMemory)) for p in procs if p.usedGpuMemory is not None]
        known.sort(key=lambda item: item[1], reverse=True)
        for pid, used in known[: self._cfg.top_processes]:
            r.processes.append((pid, used, self._comm(pid)))

    def _comm(self, pid: int) -> str | None:
        try:
            return self.ctx.files.read_text(self.ctx.procfs / str(pid) / "comm").strip() or None
        except OSError:
            return None  # gone already, or in another PID namespace

    @staticmethod
    def _state(r: GpuReading) -> str:
        """ok, or degraded while memory repair waits for a reset or has failed."""
        if r.remap_failure or r.remap_pending or r.retired_pending:
            return HwStateValues.DEGRADED.value
        return HwStateValues.OK.value

    def _poll_events(self) -> None:
        """Drain the Xid events that arrived since the last tick (nvmlEventSetWait with timeout 0)."""
        if self._event_set is None:
            return
        nvml = self._nvml
        by_uuid = {dev.info.uuid: dev for dev in self._devices}
        for _ in range(_MAX_EVENTS_PER_TICK):
            try:
                data = nvml.nvmlEventSetWait(self._event_set, 0)
            except nvml.NVMLError as exc:
                if nv.error_code(exc) != nv.TIMEOUT:
                    self.ctx.count_error(f"nvml_event_{nv.error_code(exc)}")
                return
            if not data.eventType & nv.EVENT_TYPE_XID_CRITICAL_ERROR:
                continue
            try:
                uuid = nv.text(nvml.nvmlDeviceGetUUID(data.device))
            except nvml.NVMLError:
                self.ctx.count_error("xid_unknown_device")
                continue
            dev = by_uuid.get(uuid)
            if dev is not None:
                dev.xid[int(data.eventData)] += 1

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        register_instruments(meter, churn, lambda: self.snapshot)

    # -- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Free the event set and shut NVML down (once)."""
        if not getattr(self, "_open", False):
            return
        self._open = False
        if self._event_set is not None:
            self._free_events(self._event_set)
            self._event_set = None
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as exc:
            _log.debug("nvmlShutdown: %s", exc)
