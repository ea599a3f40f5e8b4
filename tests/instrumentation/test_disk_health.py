"""Disk health through smartctl: recorded `smartctl --json` documents replayed behind the runner
Protocol (this machine has no SMART-capable disk), and the real smartctl run with no device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from instrumentation._smart import SubprocessSmartctl, health, scan
from instrumentation.diskhealth import DiskHealthCollector
from otel_sysops.errors import CollectorUnavailableError
from tests.conftest import FIXTURES, need_binary
from tests.instrumentation.conftest import Build, add, errors, key, of, points

RECORDED = FIXTURES / "smartctl"
DISK = {"hw.type": "physical_disk"}


class RecordedSmartctl:
    """Answer each smartctl invocation with the document recorded for it (scan.json, <device>.json)."""

    def __init__(self, root: Path = RECORDED) -> None:
        self.root = root
        self.calls: list[list[str]] = []

    def run(self, args: list[str]) -> dict[str, Any]:
        self.calls.append(args)
        name = "scan" if args == ["--scan"] else args[-1].rsplit("/", 1)[-1]
        path = self.root / f"{name}.json"
        if not path.exists():
            raise OSError(f"no recording for {args}")
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc


def _doc(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return doc


def _collect(pipeline_for: Build, runner: RecordedSmartctl) -> tuple[dict[Any, float], dict[str, int]]:
    pipe, settings = pipeline_for(None)
    collector = add(pipe, settings, "disk_health", DiskHealthCollector, runner=runner)
    pipe.tick()  # starts the smartctl worker
    assert collector.wait(30.0)
    return points(pipe.tick().data), errors(pipe, "disk_health")


def test_nvme_and_ata_health_from_recorded_smartctl(pipeline_for: Build) -> None:
    values, counted = _collect(pipeline_for, RecordedSmartctl())
    for name in ("nvme0", "nvme1"):
        log = _doc(name)["nvme_smart_health_information_log"]
        disk = {**DISK, "hw.id": name}
        assert values[key("hw.errors", **disk, **{"error.type": "media"})] == log["media_errors"]
        assert values[key("hw.errors", **disk, **{"error.type": "error_log"})] == log["num_err_log_entries"]
        assert values[key("sysops.disk.health.critical_warning", **disk)] == log["critical_warning"]
        assert values[key("sysops.disk.health.percentage_used", **disk)] == log["percentage_used"]
        remaining = key(
            "hw.physical_disk.endurance_utilization", **disk, **{"hw.physical_disk.state": "remaining"}
        )
        assert values[remaining] == pytest.approx(1 - log["percentage_used"] / 100)
        assert values[key("sysops.disk.health.available_spare", **disk)] == log["available_spare"] / 100
        assert values[key("hw.temperature", **disk)] == log["temperature"]
        assert values[key("sysops.disk.health.power_on_time", **disk)] == log["power_on_hours"] * 3600
    states = {(dict(a)["hw.id"], dict(a)["hw.state"]): v for a, v in of(values, "hw.status").items()}
    assert states[("nvme0", "ok")] == 1
    # nvme1 reports a critical warning (bit 2: reliability degraded) and smartctl's FAILED verdict.
    assert states[("nvme1", "failed")] == 1
    assert states[("nvme1", "ok")] == 0
    assert states[("sda", "ok")] == 1
    table = {row["id"]: row for row in _doc("sda")["ata_smart_attributes"]["table"]}
    sda = {**DISK, "hw.id": "sda"}
    assert values[key("hw.errors", **sda, **{"error.type": "reallocated"})] == table[5]["raw"]["value"]
    assert values[key("hw.errors", **sda, **{"error.type": "pending"})] == table[197]["raw"]["value"]
    smart = key(
        "hw.physical_disk.smart", **sda, **{"hw.physical_disk.smart_attribute": "Raw_Read_Error_Rate"}
    )
    assert values[smart] == table[1]["value"]
    assert values[key("hw.physical_disk.size", **sda)] == _doc("sda")["user_capacity"]["bytes"]
    # sdb could not be opened (smartctl exit status bit 1): counted and left out.
    assert "sdb" not in {dict(a)["hw.id"] for a in of(values, "hw.status")}
    assert counted == {"smartctl": 1}


def test_a_failing_smart_verdict_is_failed(tmp_path: Path, pipeline_for: Build) -> None:
    shutil.copytree(RECORDED, tmp_path / "rec")
    doc = _doc("sda")
    doc["smart_status"]["passed"] = False
    (tmp_path / "rec" / "sda.json").write_text(json.dumps(doc))
    values, _ = _collect(pipeline_for, RecordedSmartctl(tmp_path / "rec"))
    assert (
        values[
            key(
                "hw.status",
                **DISK,
                **{
                    "hw.id": "sda",
                    "hw.model": doc["model_name"],
                    "hw.serial_number": doc["serial_number"],
                    "hw.state": "failed",
                },
            )
        ]
        == 1
    )


def test_smartctl_runs_at_most_once_per_interval(pipeline_for: Build) -> None:
    runner = RecordedSmartctl()
    pipe, settings = pipeline_for(None, instrumentation={"disk_health": {"interval": 600}})
    collector = add(pipe, settings, "disk_health", DiskHealthCollector, runner=runner)
    for _ in range(3):
        pipe.tick()
        assert collector.wait(30.0)
    assert runner.calls.count(["--scan"]) == 1


def test_a_critical_warning_without_a_verdict_is_degraded() -> None:
    from instrumentation._smart import Device

    doc = _doc("nvme1")
    del doc["smart_status"]
    reading = health(doc, Device("/dev/nvme1", "nvme"))
    assert reading is not None
    assert reading.state == "degraded"


def test_health_ignores_wrong_types() -> None:
    from instrumentation._smart import Device

    doc = {
        "smartctl": {"exit_status": 0},
        "nvme_smart_health_information_log": {"media_errors": "7", "critical_warning": True},
    }
    reading = health(doc, Device("/dev/nvme0", "nvme"))
    assert reading is not None
    assert reading.errors == {}
    assert reading.critical_warning is None
    assert scan({"devices": [{"name": 3}, "x", {"name": "/dev/sda", "type": "sat"}]})[0].name == "/dev/sda"


def test_real_smartctl_without_devices_reports_nothing_and_fails_nothing(pipeline_for: Build) -> None:
    program = need_binary("smartctl")  # smartmontools
    # This machine has no disk smartctl can scan: the collector runs, reports no disk, counts nothing.
    assert scan(SubprocessSmartctl(program, 30).run(["--scan"])) == []
    pipe, settings = pipeline_for(None)
    collector = add(pipe, settings, "disk_health", DiskHealthCollector)
    pipe.tick()
    assert collector.wait(60.0)
    values = points(pipe.tick().data)
    assert not of(values, "hw.status")
    assert errors(pipe, "disk_health") == {}


def test_no_smartctl_means_unavailable(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None, instrumentation={"disk_health": {"smartctl": "no-such-smartctl"}})
    with pytest.raises(CollectorUnavailableError, match="no-such-smartctl not found"):
        add(pipe, settings, "disk_health", DiskHealthCollector)


def test_hw_metrics_of_several_collectors_render_as_one_prometheus_family(
    tmp_path: Path, pipeline_for: Build
) -> None:
    import subprocess

    from instrumentation.hardware import HardwareCollector
    from instrumentation.sensors import SensorsCollector
    from otel_sysops.sinks._prometheus import PrometheusSink

    promtool = need_binary("promtool")
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "server2s", root)
    shutil.copytree(
        FIXTURES / "numa2-edac" / "sys" / "class" / "hwmon",
        root / "sys" / "class" / "hwmon",
        dirs_exist_ok=True,
    )
    pipe, settings = pipeline_for(None, procfs=root / "proc", sysfs=root / "sys", host_root=root)
    sink = PrometheusSink()
    pipe.add_sink(sink)
    add(pipe, settings, "sensors", SensorsCollector)
    add(pipe, settings, "hardware", HardwareCollector)
    disk = add(pipe, settings, "disk_health", DiskHealthCollector, runner=RecordedSmartctl())
    pipe.tick()
    assert disk.wait(30.0)
    pipe.tick()
    text = sink.render().decode()
    # hw.temperature comes from hwmon (hardware), thermal zones (sensors) and disks (disk_health).
    assert text.count("# TYPE hw_temperature_celsius gauge") == 1
    assert 'hw_temperature_celsius{hw_id="nvme0",hw_type="physical_disk"} 38.0' in text
    assert 'hw_id="thermal_zone0"' in text
    assert text.count("# TYPE hw_status gauge") == 1
    lint = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert "parsing error" not in lint.stdout + lint.stderr, lint.stdout + lint.stderr
