"""The default GPU rules, fed by the GPU collector over the fake NVML through the real pipeline."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from analyzers.gpu_rules import (
    CLEAR,
    UNKNOWN,
    GpuRulesAnalyzer,
    flag_levels,
    increase_levels,
    sustained_levels,
    threshold_levels,
)
from otel_sysops.alerts import Severity
from otel_sysops.plugin import AnalyzerContext
from tests.fakes.fake_nvml import FakeGpu, FakeNvml, default_gpus

from .conftest import UUID, GpuRig

A, HOT, GEFORCE, LOST = UUID
W, C, E = (int(s) + 1 for s in (Severity.WARNING, Severity.CRITICAL, Severity.EMERGENCY))


def with_rules(r: GpuRig) -> GpuRig:
    r.pipeline.add_analyzer(
        "gpu_rules", GpuRulesAnalyzer(AnalyzerContext("gpu_rules", r.settings, r.pipeline.store))
    )
    return r


def firing(r: GpuRig, tick: int | None = None) -> set[tuple[str, str, Severity]]:
    """Return (rule, GPU, severity) of the firing findings (of one tick when `tick` is given).

    The GPU is the series' hw.id, or its hw.parent for a sensor's series (the temperature).
    """
    return {
        (f.rule, f.attributes.get("hw.parent") or f.attributes["hw.id"], f.severity)
        for f in r.alerts.findings
        if f.severity is not None and (tick is None or f.timestamp == r.ticks[tick])
    }


def test_rules_fire_on_the_hot_and_the_lost_gpu_only(rig: Callable[..., GpuRig]) -> None:
    r = with_rules(rig())
    r.tick()
    first = firing(r, 0)
    assert first == {
        ("gpu.temperature", HOT, Severity.CRITICAL),
        ("gpu.memory", HOT, Severity.CRITICAL),
        ("gpu.ecc.uncorrected", HOT, Severity.CRITICAL),
        ("gpu.remapped_rows.failure", HOT, Severity.CRITICAL),
        ("gpu.lost", LOST, Severity.EMERGENCY),
    }
    r.tick()
    r.tick()
    # Throttling must hold for throttle_ticks (3) ticks: thermal and power reasons both warn.
    throttle = [f for f in r.alerts.findings if f.rule == "gpu.throttle" and f.timestamp == r.ticks[2]]
    assert {(f.attributes["hw.id"], f.attributes["sysops.gpu.clocks_event.reason"]) for f in throttle} == {
        (HOT, "sw_power_cap"),
        (HOT, "hw_thermal_slowdown"),
    }
    assert all(f.severity is Severity.WARNING for f in throttle)
    assert not [f for f in r.alerts.findings if f.rule == "gpu.throttle" and f.timestamp != r.ticks[2]]
    temp = r.alerts.firing("gpu.temperature", HOT)[0]
    assert (temp.value, temp.threshold, temp.metric) == (97.0, 95.0, "hw.temperature")
    assert "97 °C" in temp.message
    assert temp.attributes["sysops.pci.bus_id"] == "00000000:0F:00.0"


def test_a_finding_clears_once_and_warning_sits_between_the_levels(rig: Callable[..., GpuRig]) -> None:
    r = with_rules(rig())
    r.tick()
    r.nvml.gpus[1].temperature = 88
    r.tick()
    assert [f.severity for f in r.alerts.findings if f.rule == "gpu.temperature"] == [
        Severity.CRITICAL,
        Severity.WARNING,
    ]
    r.nvml.gpus[1].temperature = 60
    r.tick()
    r.tick()
    temps = [f for f in r.alerts.findings if f.rule == "gpu.temperature"]
    assert [f.severity for f in temps] == [Severity.CRITICAL, Severity.WARNING, None]
    assert temps[-1].attributes["hw.parent"] == HOT
    assert temps[-1].attributes["hw.id"] == f"{HOT}/temperature"


def test_a_gpu_lost_mid_run_is_an_emergency_and_recovery_clears_it(rig: Callable[..., GpuRig]) -> None:
    r = with_rules(rig())
    r.tick()
    r.nvml.gpus[0].lost = True
    r.tick()
    assert ("gpu.lost", A, Severity.EMERGENCY) in firing(r, 1)
    # Its other series have no point this tick: their rules neither fire nor clear.
    assert not [f for f in r.alerts.findings if f.attributes["hw.id"] == A and f.rule != "gpu.lost"]
    r.nvml.gpus[0].lost = False
    r.tick()
    cleared = [
        f for f in r.alerts.findings if f.rule == "gpu.lost" and f.attributes["hw.id"] == A and not f.firing
    ]
    assert len(cleared) == 1


def test_new_uncorrectable_errors_retired_pages_and_pending_remaps(rig: Callable[..., GpuRig]) -> None:
    gpu = FakeGpu(
        name="Tesla V100-SXM2-16GB",
        uuid="GPU-v100",
        serial="1",
        bus_id="00000000:07:00.0",
        ecc={(1, 1): 5},  # five lifetime uncorrectable errors, none since the driver loaded
        retired_pages={0: [0x1000], 1: []},
        retired_pending=0,
        remapped_rows=None,
    )
    r = with_rules(rig(FakeNvml([gpu])))
    r.tick()
    assert firing(r) == set()  # history alone (aggregate 5, one page retired long ago) is not an alert
    assert gpu.ecc is not None
    assert gpu.retired_pages is not None
    gpu.ecc[(1, 1)] = 6
    gpu.retired_pages[1] = [0x2000]
    r.tick()
    assert firing(r, 1) == {
        ("gpu.ecc.uncorrected", "GPU-v100", Severity.CRITICAL),
        ("gpu.retired_pages", "GPU-v100", Severity.CRITICAL),
    }
    gpu.retired_pending = 1
    r.tick()
    assert ("gpu.retired_pages.pending", "GPU-v100", Severity.CRITICAL) in firing(r, 2)


def test_pending_row_remap_warns(rig: Callable[..., GpuRig]) -> None:
    nvml = FakeNvml()
    nvml.gpus[0].remapped_rows = (0, 1, 1, 0)
    r = with_rules(rig(nvml))
    r.tick()
    assert ("gpu.remapped_rows.pending", A, Severity.WARNING) in firing(r, 0)


def test_temperature_and_memory_rules_can_be_left_to_the_threshold_detectors(
    rig: Callable[..., GpuRig],
) -> None:
    r = with_rules(rig(rules_temperature_memory=False))
    r.tick()
    rules = {rule for rule, _, _ in firing(r)}
    assert "gpu.temperature" not in rules
    assert "gpu.memory" not in rules
    assert "gpu.lost" in rules


def test_thresholds_come_from_settings(rig: Callable[..., GpuRig]) -> None:
    r = with_rules(rig(temperature_warning=40, temperature_critical=50, throttle_ticks=1))
    r.tick()
    assert ("gpu.temperature", A, Severity.WARNING) in firing(r, 0)  # 45 °C: above 40, below 50
    assert ("gpu.temperature", HOT, Severity.CRITICAL) in firing(r, 0)
    assert ("gpu.temperature", GEFORCE, Severity.WARNING) in firing(r, 0)
    assert ("gpu.throttle", HOT, Severity.WARNING) in firing(r, 0)


def test_level_functions() -> None:
    nan = np.nan
    last = np.array([84.9, 85.0, 95.0, nan])
    assert threshold_levels(last, 85, 95).tolist() == [CLEAR, W, C, UNKNOWN]
    assert flag_levels(np.array([0.0, 1.0, nan]), Severity.EMERGENCY).tolist() == [CLEAR, E, UNKNOWN]
    values = np.array([[1.0, 1.0, 2.0], [nan, 3.0, 3.0], [2.0, nan, nan], [nan, nan, 5.0]])
    assert increase_levels(values, Severity.CRITICAL).tolist() == [C, CLEAR, UNKNOWN, CLEAR]
    held = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [1.0, nan, 1.0]])
    assert sustained_levels(held, 3, Severity.WARNING).tolist() == [W, CLEAR, CLEAR]
    assert sustained_levels(held, 4, Severity.WARNING).tolist() == [CLEAR, CLEAR, CLEAR]
    assert increase_levels(np.empty((2, 0)), Severity.CRITICAL).tolist() == [UNKNOWN, UNKNOWN]


def test_settings_refuse_inverted_thresholds(make_settings: Callable[..., object]) -> None:
    from otel_sysops.errors import ConfigError

    with pytest.raises(ConfigError, match="temperature_warning"):
        make_settings(gpu={"temperature_warning": 99, "temperature_critical": 90})


def test_a_gpu_gone_from_the_store_clears_what_it_fired(rig: Callable[..., GpuRig]) -> None:
    gpus = default_gpus()
    r = with_rules(rig(FakeNvml([gpus[0], gpus[2], gpus[3], gpus[1]])))  # the hot one last
    r.pipeline.store.evict_after = 30.0
    r.tick()
    assert {rule for rule, gpu, _ in firing(r, 0) if gpu == HOT} == {
        "gpu.temperature",
        "gpu.memory",
        "gpu.ecc.uncorrected",
        "gpu.remapped_rows.failure",
    }
    del r.nvml.gpus[3]  # the hot GPU is taken out of the host
    for _ in range(6):  # past evict_after: the store lets its series go
        r.tick()
    cleared = [
        f
        for f in r.alerts.findings
        if not f.firing and HOT in (f.attributes.get("hw.parent"), f.attributes.get("hw.id"))
    ]
    assert {f.rule for f in cleared} == {
        "gpu.temperature",
        "gpu.memory",
        "gpu.ecc.uncorrected",
        "gpu.remapped_rows.failure",
    }
    assert all(f.message.endswith("series no longer reported") for f in cleared)
    assert len(cleared) == 4  # once each
    analyzer = r.pipeline.analyzers["gpu_rules"]
    assert isinstance(analyzer, GpuRulesAnalyzer)
    assert not [k for k in analyzer._active if HOT in str(k)]
