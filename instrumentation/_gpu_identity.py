"""Find a GPU's identity (UUID, name, serial, VBIOS, PCI bus, NUMA node) and list the inventory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from otel_sysops.errors import CollectorUnavailableError

from . import _nvml as nv
from ._gpu_model import GpuInfo

_log = logging.getLogger(__name__)

T = TypeVar("T")


def numa_node(sysfs: Path, bus_id: str | None) -> int | None:
    """Return the NUMA node of a PCI device from sysfs, None when unknown (-1 or unreadable)."""
    if bus_id is None:
        return None
    try:
        node = int((sysfs / "bus" / "pci" / "devices" / nv.sysfs_bus_id(bus_id) / "numa_node").read_text())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def identify(nvml: nv.NvmlModule, index: int, sysfs: Path) -> tuple[object | None, GpuInfo, bool]:
    """Return the handle, identity and lost flag of GPU `index`; missing answers are None."""
    err = nvml.NVMLError
    lost = False

    def ask(fn: Callable[..., T], *args: object) -> T | None:
        nonlocal lost
        if lost:
            return None
        try:
            return fn(*args)
        except err as exc:
            if nv.error_code(exc) in nv.LOST:
                lost = True
            return None

    handle = ask(nvml.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        return None, GpuInfo(index, f"GPU-index-{index}", "unknown"), True
    uuid = ask(nvml.nvmlDeviceGetUUID, handle)
    name = ask(nvml.nvmlDeviceGetName, handle)
    serial = ask(nvml.nvmlDeviceGetSerial, handle)
    vbios = ask(nvml.nvmlDeviceGetVbiosVersion, handle)
    memory = ask(nvml.nvmlDeviceGetMemoryInfo, handle)
    pci = ask(nvml.nvmlDeviceGetPciInfo, handle)
    bus_id = nv.text(pci.busId) if pci is not None else None
    driver = ask(nvml.nvmlSystemGetDriverVersion)
    info = GpuInfo(
        index=index,
        uuid=nv.text(uuid) if uuid is not None else f"GPU-index-{index}",
        name=nv.text(name) if name is not None else "unknown",
        serial=nv.text(serial) if serial is not None else None,
        vbios=nv.text(vbios) if vbios is not None else None,
        memory_total=int(memory.total) if memory is not None else None,
        pci_bus_id=bus_id,
        numa_node=numa_node(sysfs, bus_id),
        driver_version=nv.text(driver) if driver is not None else None,
    )
    return handle, info, lost


def init_nvml(nvml: nv.NvmlModule) -> None:
    """nvmlInit(); raise CollectorUnavailableError when there is no usable driver."""
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise CollectorUnavailableError(f"NVML cannot start: {exc} (code {nv.error_code(exc)})") from exc


def gpu_inventory(nvml_module_name: str = "pynvml", sysfs: Path = Path("/sys")) -> list[dict[str, object]]:
    """List the GPUs (model, UUID, serial, driver, VBIOS, memory, PCI bus, NUMA node); [] without NVML."""
    try:
        nvml = nv.load_nvml(nvml_module_name)
        init_nvml(nvml)
    except CollectorUnavailableError as exc:
        _log.debug("no GPU inventory: %s", exc)
        return []
    try:
        try:
            driver: str | None = nv.text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            driver = None
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            _log.debug("no GPU inventory: nvmlDeviceGetCount: %s", exc)
            return []
        out: list[dict[str, object]] = []
        for index in range(count):
            _, info, lost = identify(nvml, index, sysfs)
            out.append(
                {
                    "index": info.index,
                    "model": info.name,
                    "uuid": info.uuid,
                    "serial": info.serial,
                    "driver_version": driver,
                    "vbios_version": info.vbios,
                    "memory_total_bytes": info.memory_total,
                    "pci_bus_id": info.pci_bus_id,
                    "numa_node": info.numa_node,
                    "lost": lost,
                }
            )
        return out
    finally:
        try:
            nvml.nvmlShutdown()
        except nvml.NVMLError as exc:
            _log.debug("nvmlShutdown: %s", exc)
