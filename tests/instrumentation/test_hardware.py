"""Hardware health: EDAC counters and hwmon temperatures of the numa2-edac fixture."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.oneline import parse_int
from instrumentation.hardware import HardwareCollector
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings
from tests.instrumentation.conftest import Build, Host, add, errors, of, points


def test_edac_errors_per_controller_and_csrow(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "hardware", HardwareCollector)
    values = points(pipe.tick().data)
    got = {(dict(a)["hw.id"], dict(a)["error.type"]): v for a, v in of(values, "hw.errors").items()}
    assert got == {
        ("mc0", "corrected"): 3,
        ("mc0", "uncorrected"): 0,
        ("mc0_csrow0", "corrected"): 2,
        ("mc0_csrow0", "uncorrected"): 0,
        ("mc0_csrow1", "corrected"): 1,
        ("mc0_csrow1", "uncorrected"): 0,
        ("mc1", "corrected"): 7,
        ("mc1", "uncorrected"): 1,
        ("mc1_csrow0", "corrected"): 0,
        ("mc1_csrow0", "uncorrected"): 0,
        ("mc1_csrow1", "corrected"): 7,
        ("mc1_csrow1", "uncorrected"): 1,
    }
    row = {
        "hw.id": "mc1_csrow1",
        "hw.name": "Skylake Socket#1 IMC#0 csrow1",
        "hw.type": "memory",
        "hw.parent": "mc1",
        "error.type": "uncorrected",
    }
    assert values[("hw.errors", frozenset(row.items()))] == 1
    controller = {
        "hw.id": "mc1",
        "hw.name": "Skylake Socket#1 IMC#0",
        "hw.type": "memory",
        "error.type": "corrected",
    }
    assert values[("hw.errors", frozenset(controller.items()))] == 7
    assert errors(pipe, "hardware") == {}


def test_hwmon_temperatures_and_limits(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "hardware", HardwareCollector)
    values = points(pipe.tick().data)
    temps = {(dict(a)["hw.id"], dict(a)["hw.name"]): v for a, v in of(values, "hw.temperature").items()}
    assert temps == {
        ("hwmon0_temp1", "coretemp Package id 0"): 45.0,
        ("hwmon0_temp2", "coretemp Core 0"): 43.0,
        ("hwmon1_temp1", "coretemp Package id 1"): 51.5,
        ("hwmon2_temp1", "nvme Composite"): 38.85,
    }
    assert all(dict(a)["hw.type"] == "temperature" for a in of(values, "hw.temperature"))
    limits = {
        (dict(a)["hw.id"], dict(a)["hw.limit_type"]): v for a, v in of(values, "hw.temperature.limit").items()
    }
    assert limits[("hwmon2_temp1", "high.critical")] == 84.85
    assert limits[("hwmon0_temp1", "high.degraded")] == 84.0
    assert len(limits) == 8


def test_one_unreadable_sensor_is_skipped(numa_host: Host, pipeline_for: Build) -> None:
    (numa_host.sysfs / "class" / "hwmon" / "hwmon0" / "temp2_input").write_text("N/A\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "hardware", HardwareCollector)
    values = points(pipe.tick().data)
    assert {dict(a)["hw.id"] for a in of(values, "hw.temperature")} == {
        "hwmon0_temp1",
        "hwmon1_temp1",
        "hwmon2_temp1",
    }
    assert errors(pipe, "hardware") == {"malformed_line": 1}


def test_only_hwmon_or_nothing(numa_host: Host, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(procfs=numa_host.procfs, sysfs=numa_host.sysfs)
    shutil.rmtree(numa_host.sysfs / "devices" / "system" / "edac")
    HardwareCollector(CollectorContext("hardware", settings))
    shutil.rmtree(numa_host.sysfs / "class" / "hwmon")
    with pytest.raises(CollectorUnavailableError):
        HardwareCollector(CollectorContext("hardware", settings))


@given(st.text())
def test_parse_int_never_raises(text: str) -> None:
    parse_int(text)


def test_old_layout_with_attributes_under_device(numa_host: Host, pipeline_for: Build) -> None:
    # Before Linux 3.x many drivers put the attributes in hwmonN/device/, name included.
    device = numa_host.sysfs / "class" / "hwmon" / "hwmon3" / "device"
    device.mkdir(parents=True)
    (device / "name").write_text("it8721\n")
    (device / "temp1_input").write_text("35000\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "hardware", HardwareCollector)
    temps = {
        dict(a)["hw.id"]: (dict(a)["hw.name"], v)
        for a, v in of(points(pipe.tick().data), "hw.temperature").items()
    }
    assert temps["hwmon3_temp1"] == ("it8721 temp1", 35.0)
