"""What the GPU collector reads: metric and attribute names, a GPU's identity, one tick's reading."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_DRIVER_VERSION,
    HW_ID,
    HW_MODEL,
    HW_NAME,
    HW_PARENT,
    HW_SENSOR_LOCATION,
    HW_SERIAL_NUMBER,
    HW_TYPE,
    HW_VENDOR,
    HwStateValues,
    HwTypeValues,
)

Attrs = dict[str, str | int]

# Names where the semantic conventions have none (listed in docs/metrics.md).
GPU_MEMORY_BUSY = "sysops.gpu.memory.busy"
GPU_CLOCK_FREQUENCY = "sysops.gpu.clock.frequency"
GPU_FAN_SPEED_RATIO = "sysops.gpu.fan.speed_ratio"
GPU_PCIE_THROUGHPUT = "sysops.gpu.pcie.throughput"
GPU_PCIE_REPLAYS = "sysops.gpu.pcie.replays"
GPU_CLOCKS_EVENT_ACTIVE = "sysops.gpu.clocks_event.active"
GPU_RETIRED_PAGES = "sysops.gpu.retired_pages"
GPU_RETIRED_PAGES_PENDING = "sysops.gpu.retired_pages.pending"
GPU_REMAPPED_ROWS = "sysops.gpu.remapped_rows"
GPU_REMAPPED_ROWS_PENDING = "sysops.gpu.remapped_rows.pending"
GPU_REMAPPED_ROWS_FAILURE = "sysops.gpu.remapped_rows.failure"
GPU_NVLINK_IO = "sysops.gpu.nvlink.io"
GPU_NVLINK_ERRORS = "sysops.gpu.nvlink.errors"
GPU_XID_EVENTS = "sysops.gpu.xid.events"
GPU_PROCESS_MEMORY_USAGE = "sysops.gpu.process.memory.usage"
GPU_ECC_VOLATILE_ERRORS = "sysops.gpu.ecc.volatile.errors"

# Attributes where the semantic conventions have none.
PCI_BUS_ID = "sysops.pci.bus_id"
NUMA_NODE = "sysops.numa.node"
GPU_CLOCK = "sysops.gpu.clock"
GPU_CLOCKS_EVENT_REASON = "sysops.gpu.clocks_event.reason"
GPU_RETIREMENT_CAUSE = "sysops.gpu.retirement.cause"
GPU_REMAP_CAUSE = "sysops.gpu.remap.cause"
GPU_NVLINK_LINK = "sysops.gpu.nvlink.link"
GPU_XID = "sysops.gpu.xid"

VENDOR = "NVIDIA"
GPU = HwTypeValues.GPU.value
STATES = (HwStateValues.OK.value, HwStateValues.DEGRADED.value, HwStateValues.FAILED.value)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What identifies a GPU (the inventory and the stable attributes of its series)."""

    index: int
    uuid: str
    name: str
    serial: str | None = None
    vbios: str | None = None
    memory_total: int | None = None
    pci_bus_id: str | None = None
    numa_node: int | None = None
    driver_version: str | None = None

    def attributes(self) -> Attrs:
        """Return the attributes every series of this GPU carries (hw.model is the product name)."""
        attrs: Attrs = {HW_ID: self.uuid, HW_NAME: self.name, HW_VENDOR: VENDOR}
        if self.name != "unknown":
            attrs[HW_MODEL] = self.name
        if self.serial:
            attrs[HW_SERIAL_NUMBER] = self.serial
        if self.driver_version:
            attrs[HW_DRIVER_VERSION] = self.driver_version
        if self.pci_bus_id is not None:
            attrs[PCI_BUS_ID] = self.pci_bus_id
        if self.numa_node is not None:
            attrs[NUMA_NODE] = self.numa_node
        return attrs

    def sensor_attributes(self) -> Attrs:
        """Return the attributes of this GPU's temperature sensor (its own hw.id, the GPU as parent)."""
        attrs: Attrs = {
            HW_ID: f"{self.uuid}/temperature",
            HW_PARENT: self.uuid,
            HW_TYPE: HwTypeValues.TEMPERATURE.value,
            HW_SENSOR_LOCATION: GPU,
            HW_NAME: f"{self.name} temperature",
            HW_VENDOR: VENDOR,
        }
        if self.pci_bus_id is not None:
            attrs[PCI_BUS_ID] = self.pci_bus_id
        if self.numa_node is not None:
            attrs[NUMA_NODE] = self.numa_node
        return attrs


@dataclass(slots=True)
class GpuReading:
    """One tick's answers of one GPU; a field is None/empty where the query failed or is unsupported."""

    state: str = HwStateValues.OK.value
    utilization: dict[str, float] = field(default_factory=dict)  # hw.gpu.task -> fraction
    memory_busy: float | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    temperature: float | None = None
    power: float | None = None  # W
    energy: float | None = None  # J, since the driver loaded
    clocks: dict[str, float] = field(default_factory=dict)  # sm/memory -> Hz
    fan: float | None = None
    pcie_rate: dict[str, float] = field(default_factory=dict)  # direction -> By/s
    pcie_bytes: dict[str, float] = field(default_factory=dict)  # direction -> By, integrated
    pcie_replays: int | None = None
    clock_events: int | None = None  # bitmask
    ecc: dict[tuple[str, str], int] = field(default_factory=dict)  # (error.type, counter) -> errors
    retired: dict[str, int] = field(default_factory=dict)  # cause -> pages
    retired_pending: int | None = None
    remapped: dict[str, int] = field(default_factory=dict)  # cause -> rows
    remap_pending: int | None = None
    remap_failure: int | None = None
    nvlink_bytes: dict[tuple[int, str], int] = field(default_factory=dict)
    nvlink_errors: dict[tuple[int, str], int] = field(default_factory=dict)
    xid: dict[int, int] = field(default_factory=dict)
    processes: list[tuple[int, int, str | None]] = field(default_factory=list)  # pid, bytes, comm


@dataclass(slots=True)
class GpuSample:
    """One GPU in one snapshot: its attributes and its reading."""

    attrs: Attrs
    generic: Attrs  # attrs + hw.type=gpu, for the generic hw.* metrics
    reading: GpuReading
    # The GPU's temperature sensor: a component of its own (hw.type=temperature) whose hw.parent is
    # the GPU, as the conventions model sensors.
    sensor: Attrs = field(default_factory=dict)


@dataclass(slots=True)
class GpuSnapshot:
    """Every GPU's reading of one tick."""

    gpus: list[GpuSample]
