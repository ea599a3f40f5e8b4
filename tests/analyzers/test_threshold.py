"""The default thresholds fire, escalate and clear through the real pipeline, with hysteresis and `for`."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

from analyzers.threshold import (
    CRITICAL,
    NONE,
    WARNING,
    RuleArrays,
    ThresholdAnalyzer,
    ThresholdParams,
    ThresholdState,
    threshold_step,
)
from otel_sysops.alerts import Finding, Severity
from otel_sysops.errors import ConfigError
from otel_sysops.settings import Settings

from .conftest import Rig

CPU = "sysops.cpu.busy"
MEM = "system.memory.utilization"
FS = "system.filesystem.utilization"
DISK = "sysops.disk.operation_time.average"
GPU_TEMP = "hw.temperature"


def _flat(ticks: list[list[Finding]]) -> list[tuple[int, Severity | None]]:
    return [(i, f.severity) for i, fs in enumerate(ticks) for f in fs]


def test_cpu_fires_only_after_its_for_duration_and_clears_past_the_hysteresis(
    rig: Callable[..., Rig],
) -> None:
    r = rig([CPU])
    r.add("threshold", ThresholdAnalyzer)
    # 10 s ticks; CPU default: warning 80 %, critical 90 %, for 5 min, hysteresis 5 points.
    values = [0.5] * 3 + [0.85] * 40 + [0.78] * 5 + [0.70] * 3
    ticks = r.run(CPU, {}, values)
    events = _flat(ticks)
    # Above 80 % from tick 3: the condition holds 5 min (30 ticks) later, at tick 33.
    assert events[0] == (33, Severity.WARNING)
    # 0.78 is below 80 % but above 75 % (hysteresis): still firing. 0.70 clears.
    assert events[1] == (48, None)
    assert len(events) == 2
    fired = ticks[33][0]
    assert fired.metric == CPU
    assert fired.rule == "threshold"
    assert fired.value == pytest.approx(0.85)
    assert fired.threshold == pytest.approx(0.80)
    assert "85 %" in fired.message
    assert "80 %" in fired.message
    assert "5 min" in fired.message


def test_a_dip_restarts_the_for_timer(rig: Callable[..., Rig]) -> None:
    r = rig([CPU])
    r.add("threshold", ThresholdAnalyzer)
    values = [0.85] * 25 + [0.5] + [0.85] * 25
    assert _flat(r.run(CPU, {}, values)) == []


def test_memory_matches_only_the_used_state_escalates_and_de_escalates(rig: Callable[..., Rig]) -> None:
    r = rig([MEM])
    r.add("threshold", ThresholdAnalyzer)
    used = (("system.memory.state", "used"),)
    free = (("system.memory.state", "free"),)
    events: list[tuple[int, Finding]] = []
    # Memory: 85/95 %, for 2 min (12 ticks), hysteresis 3 points. "free" at 99 % must never alert.
    plan = [0.5] * 2 + [0.97] * 30 + [0.93] * 15 + [0.83] * 3 + [0.80] * 2
    for i, v in enumerate(plan):
        events.extend((i, f) for f in r.tick({MEM: {used: v, free: 0.99}}))
    got = [(i, f.severity, dict(f.attributes)) for i, f in events]
    assert got == [
        (14, Severity.CRITICAL, {"system.memory.state": "used"}),
        # 0.93 is under 95 % but above 92 % (hysteresis): critical holds through that block;
        # 0.83 is under 85 % but above 82 %: critical drops to warning, which holds;
        (47, Severity.WARNING, {"system.memory.state": "used"}),
        # 0.80 is past 82 %: cleared.
        (50, None, {"system.memory.state": "used"}),
    ]


def test_filesystem_per_mountpoint_override_from_the_settings_file(
    rig: Callable[..., Rig], tmp_path: object
) -> None:
    rules = [
        {"metric": FS, "match": {"system.filesystem.mountpoint": "/data"}, "warning": 0.95, "critical": 0.99},
    ]
    r = rig([FS], analyzers={"thresholds": rules})
    r.add("threshold", ThresholdAnalyzer)
    data = (("system.device", "sdb1"), ("system.filesystem.mountpoint", "/data"))
    root = (("system.device", "sda1"), ("system.filesystem.mountpoint", "/"))
    found = r.tick({FS: {data: 0.92, root: 0.92}})
    # Filesystem has no `for`: the root fires at once at critical (90 %); /data's own rule says 95 %.
    assert [(f.severity, f.attributes["system.filesystem.mountpoint"]) for f in found] == [
        (Severity.CRITICAL, "/")
    ]
    # /data passes its own warning; / at 89 % is within the 2-point hysteresis of critical: no change.
    found = r.tick({FS: {data: 0.96, root: 0.89}})
    assert [(f.severity, f.attributes["system.filesystem.mountpoint"]) for f in found] == [
        (Severity.WARNING, "/data")
    ]
    found = r.tick({FS: {data: 0.96, root: 0.87}})
    assert [(f.severity, f.attributes["system.filesystem.mountpoint"]) for f in found] == [
        (Severity.WARNING, "/")
    ]


def test_disk_latency_has_only_a_warning_level(rig: Callable[..., Rig]) -> None:
    r = rig([DISK])
    r.add("threshold", ThresholdAnalyzer)
    attrs = {"system.device": "sda", "disk.io.direction": "read"}
    events = _flat(r.run(DISK, attrs, [0.5] * 40 + [0.01] * 2))
    assert events == [(30, Severity.WARNING), (40, None)]


def test_gpu_temperature_only_for_gpus(rig: Callable[..., Rig]) -> None:
    r = rig([GPU_TEMP])
    r.add("threshold", ThresholdAnalyzer)
    # Temperature sensors (hw.type=temperature) located on a GPU, and one elsewhere.
    gpu = (
        ("hw.id", "gpu0/temperature"),
        ("hw.parent", "gpu0"),
        ("hw.type", "temperature"),
        ("hw.sensor_location", "gpu"),
    )
    cpu = (
        ("hw.id", "cpu0/temperature"),
        ("hw.parent", "cpu0"),
        ("hw.type", "temperature"),
        ("hw.sensor_location", "cpu"),
    )
    found = [(i, f) for i in range(10) for f in r.tick({GPU_TEMP: {gpu: 97.0, cpu: 99.0}})]
    # For 1 min at 10 s ticks: the condition starts at tick 0 and is ripe at tick 6.
    assert [(i, f.severity, f.attributes["hw.parent"]) for i, f in found] == [(6, Severity.CRITICAL, "gpu0")]
    assert "97 °C" in found[0][1].message
    assert "95 °C" in found[0][1].message


def test_gaps_neither_fire_nor_clear(rig: Callable[..., Rig]) -> None:
    r = rig([FS])
    r.add("threshold", ThresholdAnalyzer)
    attrs = {"system.filesystem.mountpoint": "/"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = _flat(r.run(FS, attrs, [0.95, float("nan"), float("inf"), 0.95, float("nan"), 0.5]))
    assert events == [(0, Severity.CRITICAL), (5, None)]


def test_a_series_that_disappears_is_cleared(rig: Callable[..., Rig]) -> None:
    r = rig([FS], store={"evict_after": 30.0, "max_series": 100})
    r.add("threshold", ThresholdAnalyzer)
    attrs = (("system.filesystem.mountpoint", "/mnt"),)
    assert [f.severity for f in r.tick({FS: {attrs: 0.95}})] == [Severity.CRITICAL]
    cleared = [f for _ in range(12) for f in r.tick({FS: {}})]
    assert [f.severity for f in cleared] == [None]


def test_bad_rule_is_a_config_error_naming_it(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match=r"sysops\.cpu\.busy.*warning 0\.9.*critical 0\.5"):
        make_settings(analyzers={"thresholds": [{"metric": CPU, "warning": 0.9, "critical": 0.5}]})
    with pytest.raises(ConfigError, match="needs warning, critical or both"):
        make_settings(analyzers={"thresholds": [{"metric": CPU}]})
    with pytest.raises(ConfigError, match=r"analyzers\.thresholds\.0\.comparison"):
        make_settings(analyzers={"thresholds": [{"metric": CPU, "warning": 1, "comparison": "=>"}]})


def test_threshold_from_a_toml_file_with_for_key(
    tmp_path: object, make_settings: Callable[..., Settings]
) -> None:
    from pathlib import Path

    from otel_sysops.settings import load_settings

    path = Path(str(tmp_path)) / "sysops.toml"
    path.write_text(
        '[[analyzers.thresholds]]\nmetric = "sysops.cpu.busy"\nwarning = 0.5\ncritical = 0.9\n'
        'for = 30\nmatch = { "cpu.mode" = "user" }\n'
    )
    settings = load_settings(path, {}, environ={})
    rule = settings.analyzers.thresholds[0]
    assert (rule.warning, rule.critical, rule.for_, dict(rule.match)) == (
        0.5,
        0.9,
        30.0,
        {"cpu.mode": "user"},
    )


def test_below_comparison_with_hysteresis_pure() -> None:
    rules = RuleArrays.of(
        [ThresholdParams(warning=10.0, critical=5.0, comparison="<", hysteresis=2.0, hold=0.0)]
    )
    state = ThresholdState.empty(1)
    seen = [
        int(threshold_step(rules, state, np.array([v]), float(t))[0])
        for t, v in enumerate([20, 9, 4, 6, 8, 11, 13])
    ]
    assert seen == [NONE, WARNING, CRITICAL, CRITICAL, WARNING, WARNING, NONE]


# The default levels, written out here (not read from analyzers.defaults) so a changed
# default fails: metric, attributes, warning, critical (None: no critical level).
DEFAULTS = [
    ("sysops.cpu.busy", {}, 0.80, 0.90),
    ("system.memory.utilization", {"system.memory.state": "used"}, 0.85, 0.95),
    ("system.filesystem.utilization", {"system.filesystem.mountpoint": "/"}, 0.80, 0.90),
    ("sysops.filesystem.inodes.utilization", {"system.filesystem.mountpoint": "/"}, 0.80, 0.90),
    ("system.paging.utilization", {"system.paging.state": "used"}, 0.50, 0.80),
    ("sysops.fd.utilization", {}, 0.80, 0.90),
    (
        "sysops.disk.operation_time.average",
        {"system.device": "sda", "disk.io.direction": "write"},
        0.100,
        None,
    ),
    (
        "hw.temperature",
        {"hw.type": "temperature", "hw.sensor_location": "gpu", "hw.id": "0/temperature"},
        85.0,
        95.0,
    ),
    ("hw.gpu.memory.utilization", {"hw.id": "0"}, 0.90, 0.98),
]


@pytest.mark.parametrize(("metric", "attrs", "warning", "critical"), DEFAULTS, ids=[d[0] for d in DEFAULTS])
def test_every_default_fires_each_level_and_clears(
    rig: Callable[..., Rig], metric: str, attrs: dict[str, str], warning: float, critical: float | None
) -> None:
    r = rig([metric])
    r.add("threshold", ThresholdAnalyzer)
    top = critical if critical is not None else warning
    # 10 min of each: longer than every default `for`.
    plan = [warning * 0.5] * 3 + [warning * 1.001] * 60 + [top * 1.01] * 60 + [warning * 0.5] * 3
    events = [(i, f) for i, fs in enumerate(r.run(metric, attrs, plan)) for f in fs]
    severities = [f.severity for _, f in events]
    expected = (
        [Severity.WARNING, Severity.CRITICAL, None] if critical is not None else [Severity.WARNING, None]
    )
    assert severities == expected
    assert events[0][1].threshold == pytest.approx(warning)
    assert events[0][1].attributes == attrs
    assert events[-1][0] == 123
