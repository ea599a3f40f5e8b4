"""The GPU collector over the fake NVML, through the real SDK pipeline: values, attributes, degradation."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation import _nvml as nv
from instrumentation.gpu import GpuCollector, gpu_inventory
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import INSTRUMENTATION_GROUP, Collector, CollectorContext, load_plugins
from otel_sysops.settings import Settings
from tests.fakes import fake_nvml
from tests.fakes.fake_nvml import FakeGpu, FakeNvml, as_nvml, default_gpus

from .conftest import UUID, GpuRig, of_gpu, points, units

GIB = 1024**3
A, HOT, GEFORCE, LOST = UUID


def test_values_units_and_attributes(rig: Callable[..., GpuRig]) -> None:
    data = rig().tick()
    temp = points(data, "hw.temperature")
    assert (
        temp[
            frozenset(
                {
                    "hw.id": f"{A}/temperature",
                    "hw.parent": A,
                    "hw.name": "NVIDIA A100-SXM4-40GB temperature",
                    "hw.vendor": "NVIDIA",
                    "hw.type": "temperature",
                    "hw.sensor_location": "gpu",
                    "sysops.pci.bus_id": "00000000:07:00.0",
                    "sysops.numa.node": 0,
                }.items()
            )
        ]
        == 45.0
    )
    assert of_gpu(data, "hw.temperature", HOT, **{"sysops.numa.node": 1}) == [97.0]
    # numa_node -1 (no NUMA affinity) is left out rather than reported as a node.
    [geforce] = [dict(a) for a in temp if dict(a)["hw.parent"] == GEFORCE]
    assert "sysops.numa.node" not in geforce
    assert of_gpu(data, "hw.power", A) == [120.0]  # 120000 mW
    assert of_gpu(data, "hw.energy", A) == [5000.0]  # 5e6 mJ
    assert of_gpu(data, "hw.gpu.memory.usage", A) == [4 * GIB]
    assert of_gpu(data, "hw.gpu.memory.limit", A) == [40 * GIB]
    assert of_gpu(data, "hw.gpu.memory.utilization", A) == [pytest.approx(0.1)]
    assert of_gpu(data, "hw.gpu.utilization", A, **{"hw.gpu.task": "general"}) == [0.3]
    assert of_gpu(data, "hw.gpu.utilization", GEFORCE, **{"hw.gpu.task": "encoder"}) == [0.25]
    assert of_gpu(data, "hw.gpu.utilization", GEFORCE, **{"hw.gpu.task": "decoder"}) == [0.40]
    assert of_gpu(data, "sysops.gpu.memory.busy", A) == [0.12]
    assert of_gpu(data, "sysops.gpu.clock.frequency", HOT, **{"sysops.gpu.clock": "sm"}) == [1005e6]
    assert of_gpu(data, "sysops.gpu.clock.frequency", A, **{"sysops.gpu.clock": "memory"}) == [1215e6]
    assert of_gpu(data, "sysops.gpu.fan.speed_ratio", GEFORCE) == [0.55]
    assert of_gpu(data, "sysops.gpu.fan.speed_ratio", A) == []  # passively cooled: NotSupported
    assert of_gpu(data, "sysops.gpu.pcie.throughput", A, **{"network.io.direction": "receive"}) == [
        8000 * 1024
    ]
    assert of_gpu(data, "sysops.gpu.pcie.replays", A) == [0]

    # ECC: the lifetime (aggregate) counts on hw.errors, those since the driver loaded (volatile,
    # a part of them) on their own metric, so sum(hw.errors) counts each error once (17, not 20).
    def ecc(name: str) -> dict[str, float]:
        return {dict(a)["error.type"]: v for a, v in points(data, name).items() if dict(a)["hw.id"] == A}

    assert ecc("hw.errors") == {"corrected": 17, "uncorrected": 0}
    assert ecc("sysops.gpu.ecc.volatile.errors") == {"corrected": 3, "uncorrected": 0}
    # Every GPU series names the model, serial number and driver (hw.gpu.* included).
    for name in ("hw.gpu.memory.usage", "hw.gpu.utilization", "hw.power"):
        attrs = [dict(a) for a in points(data, name) if dict(a)["hw.id"] == A]
        assert attrs
        for a in attrs:
            assert a["hw.model"] == "NVIDIA A100-SXM4-40GB"
            assert a["hw.serial_number"]
            assert a["hw.driver_version"]
    # The temperature sensor is its own component: not the GPU's hw.id, the GPU as its parent.
    sensor = [dict(a) for a in points(data, "hw.temperature") if dict(a)["hw.parent"] == A]
    assert [(s["hw.id"], s["hw.type"]) for s in sensor] == [(f"{A}/temperature", "temperature")]
    assert of_gpu(data, "hw.errors", GEFORCE) == []
    # Clock-event reasons: one 0/1 gauge per reason.
    assert of_gpu(
        data, "sysops.gpu.clocks_event.active", HOT, **{"sysops.gpu.clocks_event.reason": "sw_power_cap"}
    ) == [1]
    assert of_gpu(
        data,
        "sysops.gpu.clocks_event.active",
        HOT,
        **{"sysops.gpu.clocks_event.reason": "hw_thermal_slowdown"},
    ) == [1]
    assert of_gpu(
        data, "sysops.gpu.clocks_event.active", HOT, **{"sysops.gpu.clocks_event.reason": "gpu_idle"}
    ) == [0]
    assert len(of_gpu(data, "sysops.gpu.clocks_event.active", A)) == len(nv.CLOCK_EVENT_REASONS)
    # Row remapping (Ampere): counts, pending and failure flags.
    assert of_gpu(data, "sysops.gpu.remapped_rows", HOT, **{"sysops.gpu.remap.cause": "uncorrectable"}) == [2]
    assert of_gpu(data, "sysops.gpu.remapped_rows.failure", HOT) == [1]
    assert of_gpu(data, "sysops.gpu.remapped_rows.pending", A) == [0]
    assert of_gpu(data, "sysops.gpu.retired_pages", A) == []  # NotSupported on this GPU
    # NVLink: the two active links of GPU 0; the inactive third is not reported.
    nvlink = {
        (dict(a)["sysops.gpu.nvlink.link"], dict(a)["network.io.direction"]): v
        for a, v in points(data, "sysops.gpu.nvlink.io").items()
        if dict(a)["hw.id"] == A
    }
    assert nvlink == {(0, "transmit"): 1000 * 1024, (0, "receive"): 2000 * 1024, (1, "transmit"): 3000 * 1024,
                      (1, "receive"): 4000 * 1024}  # fmt: skip
    assert of_gpu(
        data, "sysops.gpu.nvlink.errors", A, **{"sysops.gpu.nvlink.link": 0, "error.type": "replay"}
    ) == [1]
    assert of_gpu(data, "sysops.gpu.nvlink.io", GEFORCE) == []
    # hw.status: one series per state, 1 for the current one.
    assert of_gpu(data, "hw.status", A, **{"hw.state": "ok"}) == [1]
    assert of_gpu(data, "hw.status", HOT, **{"hw.state": "degraded"}) == [1]  # a failed row remap
    assert of_gpu(data, "hw.status", LOST, **{"hw.state": "failed"}) == [1]
    assert of_gpu(data, "hw.status", LOST, **{"hw.state": "ok"}) == [0]
    u = units(data)
    assert (u["hw.temperature"], u["hw.power"], u["hw.energy"], u["hw.gpu.memory.usage"], u["hw.gpu.io"]) == (
        "Cel",
        "W",
        "J",
        "By",
        "By",
    )


def test_process_memory_is_top_n_through_the_churning_meter(rig: Callable[..., GpuRig]) -> None:
    r = rig(top_processes=1)
    data = r.tick()
    procs = points(data, "sysops.gpu.process.memory.usage")
    assert {(dict(a)["hw.id"], dict(a)["process.pid"]): v for a, v in procs.items()} == {(A, 4242): 3 * GIB}
    # Processes come and go: the next tick reports only the live set (no SDK history kept).
    r.nvml.gpus[0].processes = [(5151, GIB)]
    procs = points(r.tick(), "sysops.gpu.process.memory.usage")
    assert {dict(a)["process.pid"] for a in procs} == {5151}


def test_pcie_bytes_are_the_sampled_rate_integrated_over_the_tick(rig: Callable[..., GpuRig]) -> None:
    collector = rig().collector
    collector.collect(100.0)
    collector.collect(102.5)
    assert collector.snapshot is not None
    reading = collector.snapshot.gpus[0].reading
    assert reading.pcie_bytes == {"transmit": 2000 * 1024 * 2.5, "receive": 8000 * 1024 * 2.5}


def test_not_supported_is_asked_once_per_device(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    for _ in range(4):
        r.tick()
    calls = r.nvml.calls
    assert calls[("nvmlDeviceGetTotalEccErrors", 2)] == 1  # GeForce: no ECC
    assert calls[("nvmlDeviceGetTotalEccErrors", 0)] == 16  # 4 counters x 4 ticks
    assert calls[("nvmlDeviceGetFanSpeed", 0)] == 1
    assert calls[("nvmlDeviceGetFanSpeed", 2)] == 4
    assert calls[("nvmlDeviceGetRemappedRows", 2)] == 1
    assert calls[("nvmlDeviceGetNvLinkState", 2)] == 1
    # NVLink topology is learnt once; the three links of GPU 0 are probed once, plus the end marker.
    assert calls[("nvmlDeviceGetNvLinkState", 0)] == 4


def test_a_failing_query_is_counted_retried_and_hides_nothing_else(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    r.nvml.gpus[0].failing = {"nvmlDeviceGetTemperature"}
    r.tick()
    data = r.tick()
    assert of_gpu(data, "hw.temperature", A) == []
    assert of_gpu(data, "hw.power", A) == [120.0]
    assert of_gpu(data, "hw.temperature", HOT) == [97.0]
    assert r.nvml.calls[("nvmlDeviceGetTemperature", 0)] == 2  # not "not supported": asked again
    assert r.pipeline.errors.snapshot()[("gpu", f"nvml_{fake_nvml.NVML_ERROR_UNKNOWN}")] == 2


def test_a_gpu_lost_mid_run_reports_failed_and_comes_back(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    r.tick()
    r.nvml.gpus[0].lost = True
    data = r.tick()
    assert of_gpu(data, "hw.status", A, **{"hw.state": "failed"}) == [1]
    assert of_gpu(data, "hw.status", A, **{"hw.state": "ok"}) == [0]
    assert of_gpu(data, "hw.temperature", A) == []
    assert of_gpu(data, "hw.temperature", HOT) == [97.0]  # the others are unaffected
    assert r.pipeline.errors.snapshot()[("gpu", "gpu_lost")] == 2  # GPU 3 at start, GPU 0 now: once per loss
    r.nvml.gpus[0].lost = False
    data = r.tick()
    assert of_gpu(data, "hw.status", A, **{"hw.state": "ok"}) == [1]
    assert of_gpu(data, "hw.temperature", A) == [45.0]


def test_uninitialized_nvml_is_started_again(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    r.tick()
    r.nvml.nvmlShutdown()  # someone else shut NVML down: every query now says Uninitialized
    data = r.tick()
    assert points(data, "hw.temperature") == {}
    assert r.pipeline.errors.snapshot()[("gpu", "nvml_uninitialized")] >= 1
    data = r.tick()
    assert of_gpu(data, "hw.temperature", A) == [45.0]
    assert r.nvml.calls[("nvmlInit", None)] == 2
    # The GPUs are registered for Xid events again on a new event set.
    r.nvml.emit_xid(0, 31)
    assert of_gpu(r.tick(), "sysops.gpu.xid.events", A, **{"sysops.gpu.xid": 31}) == [1]


def test_xid_events_are_counted_per_code(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    r.nvml.emit_xid(0, 79)
    r.nvml.emit_xid(0, 79)
    r.nvml.emit_xid(1, 48)
    r.nvml.emit_xid(2, 13)  # the GeForce has no event support: never registered, never seen
    data = r.tick()
    xid = {
        (dict(a)["hw.id"], dict(a)["sysops.gpu.xid"]): v
        for a, v in points(data, "sysops.gpu.xid.events").items()
    }
    assert xid == {(A, 79): 2, (HOT, 48): 1}
    r.nvml.emit_xid(0, 79)
    data = r.tick()
    assert of_gpu(data, "sysops.gpu.xid.events", A, **{"sysops.gpu.xid": 79}) == [3]
    # Polled without waiting: one call per tick when nothing is queued, plus one per event.
    assert r.nvml.calls[("nvmlEventSetWait", None)] == 4 + 2


def test_close_frees_events_and_shuts_nvml_down(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    r.tick()
    assert r.nvml.initialized == 1
    assert len(r.nvml.event_sets) == 1
    r.pipeline.close(2.0)
    assert r.nvml.initialized == 0
    assert r.nvml.event_sets == []
    r.collector.close()  # idempotent
    assert r.nvml.initialized == 0


def test_no_xid_events_when_disabled(rig: Callable[..., GpuRig]) -> None:
    r = rig(xid_events=False)
    r.nvml.emit_xid(0, 79)
    assert points(r.tick(), "sysops.gpu.xid.events") == {}
    assert r.nvml.calls[("nvmlEventSetCreate", None)] == 0


# -- unavailable ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED, fake_nvml.NVML_ERROR_LIBRARY_NOT_FOUND]
)
def test_no_driver_makes_the_collector_unavailable(make_settings: Callable[..., Settings], code: int) -> None:
    ctx = CollectorContext("gpu", make_settings())
    with pytest.raises(CollectorUnavailableError, match="NVML cannot start"):
        GpuCollector(ctx, nvml=as_nvml(FakeNvml(init_error=code)))


def test_no_gpus_makes_the_collector_unavailable_and_shuts_nvml_down(
    make_settings: Callable[..., Settings],
) -> None:
    nvml = FakeNvml([])
    with pytest.raises(CollectorUnavailableError, match="no GPU"):
        GpuCollector(CollectorContext("gpu", make_settings()), nvml=as_nvml(nvml))
    assert nvml.initialized == 0


def test_missing_binding_names_the_extra(make_settings: Callable[..., Settings]) -> None:
    ctx = CollectorContext("gpu", make_settings(gpu={"nvml_module": "tests.fakes.no_such_binding"}))
    with pytest.raises(
        CollectorUnavailableError, match=re.escape("'tests.fakes.no_such_binding' is not installed")
    ):
        GpuCollector(ctx)


def test_real_pynvml_without_a_gpu_is_unavailable(make_settings: Callable[..., Settings]) -> None:
    # The real binding when installed (no driver here: NVMLError_LibraryNotFound), else ImportError.
    with pytest.raises(CollectorUnavailableError, match=r"otel-sysops\[gpu\]|NVML cannot start"):
        GpuCollector(CollectorContext("gpu", make_settings()))


def collector_builder(settings: Settings) -> Callable[[str, type[Collector[Any]]], Collector[Any]]:
    """The plugin loader's `build` for collectors made from `settings`."""

    def build(name: str, cls: type[Collector[Any]]) -> Collector[Any]:
        return cls(CollectorContext(name, settings))

    return build


def test_the_plugin_loader_logs_one_info_line_without_the_library(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(gpu={"nvml_module": "tests.fakes.no_such_binding"})
    caplog.set_level(logging.DEBUG)
    loaded = load_plugins(INSTRUMENTATION_GROUP, collector_builder(settings), ["gpu"])
    assert loaded == {}
    records = [r for r in caplog.records if r.name.startswith(("otel_sysops", "instrumentation"))]
    assert [(r.levelno, r.getMessage()) for r in records if r.levelno >= logging.INFO] == [
        (
            logging.INFO,
            "plugin gpu skipped: NVML binding 'tests.fakes.no_such_binding' is not installed",
        )
    ]


def test_the_plugin_loader_builds_the_collector_from_the_setting(
    make_settings: Callable[..., Settings],
) -> None:
    fake_nvml.reset()
    settings = make_settings(gpu={"nvml_module": "tests.fakes.fake_nvml"})
    loaded = load_plugins(INSTRUMENTATION_GROUP, collector_builder(settings), ["gpu"])
    assert isinstance(loaded["gpu"], GpuCollector)
    loaded["gpu"].close()
    assert fake_nvml.default.initialized == 0


def test_disabled_by_setting(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(CollectorUnavailableError, match="disabled"):
        GpuCollector(CollectorContext("gpu", make_settings(gpu={"enabled": False})), nvml=as_nvml(FakeNvml()))


# -- inventory -----------------------------------------------------------------------------------


def test_inventory_lists_every_gpu(sysfs: Path) -> None:
    fake = fake_nvml.reset()
    inventory = gpu_inventory("tests.fakes.fake_nvml", sysfs)
    assert [g["uuid"] for g in inventory] == UUID
    assert inventory[0] == {
        "index": 0,
        "model": "NVIDIA A100-SXM4-40GB",
        "uuid": A,
        "serial": "1560221000001",
        "driver_version": "550.54.15",
        "vbios_version": "92.00.45.00.03",
        "memory_total_bytes": 40 * GIB,
        "pci_bus_id": "00000000:07:00.0",
        "numa_node": 0,
        "lost": False,
    }
    assert inventory[2]["numa_node"] is None
    assert inventory[3]["lost"] is True
    assert fake.initialized == 0  # shut down after listing


def test_inventory_is_empty_without_nvml() -> None:
    assert gpu_inventory("tests.fakes.no_such_binding") == []
    fake_nvml.reset([FakeGpu(name="x", uuid="GPU-x", serial="1", bus_id="00000000:01:00.0")])
    fake_nvml.default.init_error = fake_nvml.NVML_ERROR_DRIVER_NOT_LOADED
    assert gpu_inventory("tests.fakes.fake_nvml") == []
    fake_nvml.reset()


def test_sysfs_bus_id_and_text() -> None:
    assert nv.sysfs_bus_id("00000000:3B:00.0") == "0000:3b:00.0"
    assert nv.sysfs_bus_id("00000001:AF:00.1") == "0001:af:00.1"
    assert nv.sysfs_bus_id("garbage") == "garbage"
    assert nv.text(b"NVIDIA A100") == "NVIDIA A100"
    assert nv.text("x") == "x"


def test_fake_errors_behave_like_pynvml() -> None:
    # pynvml's NVMLError(code) builds the subclass for the code; the collector relies on `.value`.
    err = fake_nvml.NVMLError(fake_nvml.NVML_ERROR_GPU_IS_LOST)
    assert isinstance(err, fake_nvml.NVMLError_GpuIsLost)
    assert nv.error_code(err) == nv.GPU_IS_LOST
    assert nv.error_code(fake_nvml.NVMLError_NotSupported()) == nv.NOT_SUPPORTED
    assert nv.error_code(ValueError()) is None
    assert len(default_gpus()) == 4


@given(st.text())
def test_sysfs_bus_id_never_raises(text: str) -> None:
    assert isinstance(nv.sysfs_bus_id(text), str)


def test_unreadable_numa_node_is_left_out(rig: Callable[..., GpuRig], sysfs: Path) -> None:
    (sysfs / "bus" / "pci" / "devices" / "0000:07:00.0" / "numa_node").write_text("garbage\n")
    data = rig().tick()
    [attrs] = [dict(a) for a in points(data, "hw.temperature") if dict(a)["hw.parent"] == A]
    assert "sysops.numa.node" not in attrs


class OlderBinding(FakeNvml):
    """An older binding, which names the reasons "throttle reasons" only."""

    def __getattribute__(self, name: str) -> Any:
        if name == "nvmlDeviceGetCurrentClocksEventReasons":
            raise AttributeError(name)  # the function is absent from such a binding
        return super().__getattribute__(name)


def test_older_bindings_use_the_throttle_reasons_function(rig: Callable[..., GpuRig]) -> None:
    r = rig(OlderBinding())
    data = r.tick()
    assert of_gpu(
        data, "sysops.gpu.clocks_event.active", HOT, **{"sysops.gpu.clocks_event.reason": "sw_power_cap"}
    ) == [1]
    assert r.nvml.calls[("nvmlDeviceGetCurrentClocksThrottleReasons", 1)] == 1
    assert r.nvml.calls[("nvmlDeviceGetCurrentClocksEventReasons", 1)] == 0


def test_a_gpu_lost_at_start_is_identified_when_it_comes_back(rig: Callable[..., GpuRig]) -> None:
    r = rig()
    data = r.tick()
    assert of_gpu(data, "hw.status", LOST, **{"hw.state": "failed"}) == [1]
    r.nvml.gpus[3].lost = False
    r.nvml.emit_xid(3, 79)  # not registered yet: this one is missed
    data = r.tick()
    uuid = "GPU-deadbeef-0000-0000-0000-000000000000"
    assert of_gpu(data, "hw.status", uuid, **{"hw.state": "ok"}) == [1]
    assert of_gpu(data, "hw.temperature", uuid, **{"sysops.pci.bus_id": "00000000:87:00.0"}) == [45.0]
    assert of_gpu(data, "hw.status", LOST) == []
    r.nvml.emit_xid(3, 79)  # registered for Xid events on its return
    assert of_gpu(r.tick(), "sysops.gpu.xid.events", uuid) == [1]
