"""The GPU collector's instruments: one observable per metric, reading the latest snapshot only."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.hw_attributes import HW_GPU_TASK, HW_STATE
from opentelemetry.semconv._incubating.attributes.network_attributes import NETWORK_IO_DIRECTION
from opentelemetry.semconv._incubating.attributes.process_attributes import (
    PROCESS_EXECUTABLE_NAME,
    PROCESS_PID,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hw
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from otel_sysops.churn import ChurningMeter

from . import _nvml as nv
from ._gpu_model import (
    GPU_CLOCK,
    GPU_CLOCK_FREQUENCY,
    GPU_CLOCKS_EVENT_ACTIVE,
    GPU_CLOCKS_EVENT_REASON,
    GPU_ECC_VOLATILE_ERRORS,
    GPU_FAN_SPEED_RATIO,
    GPU_MEMORY_BUSY,
    GPU_NVLINK_ERRORS,
    GPU_NVLINK_IO,
    GPU_NVLINK_LINK,
    GPU_PCIE_REPLAYS,
    GPU_PCIE_THROUGHPUT,
    GPU_PROCESS_MEMORY_USAGE,
    GPU_REMAP_CAUSE,
    GPU_REMAPPED_ROWS,
    GPU_REMAPPED_ROWS_FAILURE,
    GPU_REMAPPED_ROWS_PENDING,
    GPU_RETIRED_PAGES,
    GPU_RETIRED_PAGES_PENDING,
    GPU_RETIREMENT_CAUSE,
    GPU_XID,
    GPU_XID_EVENTS,
    STATES,
    Attrs,
    GpuReading,
    GpuSnapshot,
)

Pick = Callable[[GpuReading], Iterable[tuple[float, Attrs]]]


def register_instruments(
    meter: Meter, churn: ChurningMeter, snapshot: Callable[[], GpuSnapshot | None]
) -> None:
    """Create every GPU instrument on `meter` (and the per-process one on `churn`)."""

    def cb(
        pick: Pick, generic: bool = False, sensor: bool = False
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        """Build a callback yielding `pick(reading)` for every GPU with its attributes."""

        def callback(_: CallbackOptions) -> Iterator[Observation]:
            snap = snapshot()
            if snap is None:
                return
            for gpu in snap.gpus:
                base = gpu.sensor if sensor else gpu.generic if generic else gpu.attrs
                for value, extra in pick(gpu.reading):
                    yield Observation(value, {**base, **extra} if extra else base)

        return callback

    gauge, counter, updown = (
        meter.create_observable_gauge,
        meter.create_observable_counter,
        meter.create_observable_up_down_counter,
    )
    gauge(
        hw.HW_GPU_UTILIZATION,
        [cb(lambda r: [(v, {HW_GPU_TASK: t}) for t, v in r.utilization.items()])],
        "1",
        "Fraction of the last sample period the GPU was busy, by task (general, encoder, decoder)",
    )
    updown(hw.HW_GPU_MEMORY_USAGE, [cb(lambda r: _one(r.memory_used))], "By", "GPU memory in use")
    updown(hw.HW_GPU_MEMORY_LIMIT, [cb(lambda r: _one(r.memory_total))], "By", "GPU memory in total")
    gauge(
        hw.HW_GPU_MEMORY_UTILIZATION,
        [cb(lambda r: _one(_ratio(r.memory_used, r.memory_total)))],
        "1",
        "Fraction of GPU memory in use",
    )
    counter(
        hw.HW_GPU_IO,
        [cb(lambda r: [(v, {NETWORK_IO_DIRECTION: d}) for d, v in r.pcie_bytes.items()])],
        "By",
        "PCIe bytes, integrated from NVML's sampled throughput",
    )
    gauge(
        hw.HW_TEMPERATURE,
        [cb(lambda r: _one(r.temperature), sensor=True)],
        "Cel",
        "GPU core temperature (a sensor with its own hw.id; hw.parent is the GPU)",
    )
    gauge(hw.HW_POWER, [cb(lambda r: _one(r.power), True)], "W", "GPU board power draw")
    counter(hw.HW_ENERGY, [cb(lambda r: _one(r.energy), True)], "J", "GPU energy since the driver loaded")
    # The lifetime (aggregate) count is hw.errors; the count since the driver loaded (volatile) is a
    # part of it and has a name of its own, so sum(hw.errors) counts each error once.
    counter(
        hw.HW_ERRORS,
        [cb(lambda r: [(v, {ERROR_TYPE: t}) for (t, c), v in r.ecc.items() if c == "aggregate"], True)],
        "{error}",
        "GPU memory ECC errors over the GPU's lifetime (NVML aggregate counters)",
    )
    counter(
        GPU_ECC_VOLATILE_ERRORS,
        [cb(lambda r: [(v, {ERROR_TYPE: t}) for (t, c), v in r.ecc.items() if c == "volatile"], True)],
        "{error}",
        "GPU memory ECC errors since the driver loaded (NVML volatile counters; part of hw.errors)",
    )
    updown(
        hw.HW_STATUS,
        [cb(lambda r: [(int(r.state == s), {HW_STATE: s}) for s in STATES], True)],
        "1",
        "1 for the GPU's current state (ok, degraded, failed = lost from the bus), 0 otherwise",
    )
    gauge(
        GPU_MEMORY_BUSY,
        [cb(lambda r: _one(r.memory_busy))],
        "1",
        "Fraction of the last sample period device memory was being read or written",
    )
    gauge(
        GPU_CLOCK_FREQUENCY,
        [cb(lambda r: [(v, {GPU_CLOCK: c}) for c, v in r.clocks.items()])],
        "Hz",
        "Current SM and memory clocks",
    )
    gauge(GPU_FAN_SPEED_RATIO, [cb(lambda r: _one(r.fan))], "1", "Intended fan speed, fraction of maximum")
    gauge(
        GPU_PCIE_THROUGHPUT,
        [cb(lambda r: [(v, {NETWORK_IO_DIRECTION: d}) for d, v in r.pcie_rate.items()])],
        "By/s",
        "PCIe throughput sampled by NVML (20 ms window)",
    )
    counter(GPU_PCIE_REPLAYS, [cb(lambda r: _one(r.pcie_replays))], "{replay}", "PCIe replay counter")
    gauge(
        GPU_CLOCKS_EVENT_ACTIVE,
        [cb(_clock_events)],
        "1",
        "1 while a clock-event (throttle) reason holds the clocks down, 0 otherwise",
    )
    updown(
        GPU_RETIRED_PAGES,
        [cb(lambda r: [(v, {GPU_RETIREMENT_CAUSE: c}) for c, v in r.retired.items()])],
        "{page}",
        "Memory pages retired, by cause",
    )
    gauge(
        GPU_RETIRED_PAGES_PENDING,
        [cb(lambda r: _one(r.retired_pending))],
        "1",
        "1 when a page retirement waits for a GPU reset",
    )
    updown(
        GPU_REMAPPED_ROWS,
        [cb(lambda r: [(v, {GPU_REMAP_CAUSE: c}) for c, v in r.remapped.items()])],
        "{row}",
        "Memory rows remapped, by the kind of error that caused it",
    )
    gauge(
        GPU_REMAPPED_ROWS_PENDING,
        [cb(lambda r: _one(r.remap_pending))],
        "1",
        "1 when a row remapping waits for a GPU reset",
    )
    gauge(
        GPU_REMAPPED_ROWS_FAILURE,
        [cb(lambda r: _one(r.remap_failure))],
        "1",
        "1 when a row remapping failed (the GPU needs service)",
    )
    counter(
        GPU_NVLINK_IO,
        [
            cb(
                lambda r: [
                    (v, {GPU_NVLINK_LINK: link, NETWORK_IO_DIRECTION: d})
                    for (link, d), v in r.nvlink_bytes.items()
                ]
            )
        ],
        "By",
        "NVLink data bytes per link",
    )
    counter(
        GPU_NVLINK_ERRORS,
        [
            cb(
                lambda r: [
                    (v, {GPU_NVLINK_LINK: link, ERROR_TYPE: t}) for (link, t), v in r.nvlink_errors.items()
                ]
            )
        ],
        "{error}",
        "NVLink data-link errors per link (replay, recovery, CRC)",
    )
    counter(
        GPU_XID_EVENTS,
        [cb(lambda r: [(v, {GPU_XID: xid}) for xid, v in sorted(r.xid.items())])],
        "{event}",
        "Xid critical errors reported by the driver, by Xid code",
    )
    churn.create_observable_gauge(
        GPU_PROCESS_MEMORY_USAGE,
        [cb(_processes)],
        "By",
        "GPU memory used by the largest compute processes (top N per GPU)",
    )


def _one(value: float | None) -> list[tuple[float, Attrs]]:
    return [] if value is None else [(value, {})]


def _ratio(used: int | None, total: int | None) -> float | None:
    return None if used is None or not total else used / total


def _clock_events(r: GpuReading) -> list[tuple[float, Attrs]]:
    if r.clock_events is None:
        return []
    return [
        (int(bool(r.clock_events & bit)), {GPU_CLOCKS_EVENT_REASON: name})
        for name, bit in nv.CLOCK_EVENT_REASONS.items()
    ]


def _processes(r: GpuReading) -> list[tuple[float, Attrs]]:
    out: list[tuple[float, Attrs]] = []
    for pid, used, comm in r.processes:
        attrs: Attrs = {PROCESS_PID: pid}
        if comm is not None:
            attrs[PROCESS_EXECUTABLE_NAME] = comm
        out.append((used, attrs))
    return out
