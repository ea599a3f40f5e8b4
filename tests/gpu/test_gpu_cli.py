"""`otel-sysops snapshot --json` with the fake NVML injected by setting, and without any binding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

from .conftest import UUID, make_sysfs

ROOT = Path(__file__).resolve().parents[2]
A, HOT, GEFORCE, LOST = UUID


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    environ.update(PYTHONPATH=str(ROOT), SYSOPS_SYSFS=str(make_sysfs(tmp_path / "sys")), **env)
    return environ


def snapshot(tmp_path: Path, **env: str) -> tuple[dict[str, Any], str]:
    environ = environment(tmp_path, SYSOPS_PROMETHEUS__ENABLED="false", **env)
    proc = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "snapshot", "--json", "--delay", "0.05"],
        capture_output=True,
        text=True,
        env=environ,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.slow
def test_snapshot_shows_gpu_metrics_and_the_rules_fire(tmp_path: Path) -> None:
    doc, stderr = snapshot(tmp_path, SYSOPS_GPU__NVML_MODULE="tests.fakes.fake_nvml")
    metrics = {m["name"]: m for m in doc["metrics"]}
    temp = metrics["hw.temperature"]
    assert temp["unit"] == "Cel"
    assert {
        "attributes": {
            "hw.id": f"{A}/temperature",
            "hw.parent": A,
            "hw.name": "NVIDIA A100-SXM4-40GB temperature",
            "hw.vendor": "NVIDIA",
            "hw.type": "temperature",
            "hw.sensor_location": "gpu",
            "sysops.pci.bus_id": "00000000:07:00.0",
            "sysops.numa.node": 0,
        },
        "value": 45.0,
    } in temp["points"]
    for name in (
        "hw.gpu.utilization",
        "hw.gpu.memory.usage",
        "hw.gpu.memory.limit",
        "hw.gpu.memory.utilization",
        "hw.gpu.io",
        "hw.power",
        "hw.energy",
        "hw.errors",
        "hw.status",
        "sysops.gpu.clocks_event.active",
        "sysops.gpu.process.memory.usage",
    ):
        assert metrics[name]["points"], name
    assert "system.cpu.time" in metrics  # the rest of the agent is there too
    lost = [p for p in metrics["hw.status"]["points"] if p["attributes"]["hw.id"] == LOST]
    assert {p["attributes"]["hw.state"]: p["value"] for p in lost} == {"ok": 0, "degraded": 0, "failed": 1}
    # The default rules fire on the hot GPU and the lost one (through the log alert sink).
    volatile = "sysops.gpu.ecc.volatile.errors"
    ecc = f"FIRING CRITICAL gpu.ecc.uncorrected {volatile}: GPU NVIDIA A100-SXM4-40GB ({HOT})"
    assert ecc in stderr
    # Temperature and memory belong to the threshold analyzer (two-minute `for`): not in one snapshot.
    assert "gpu.temperature" not in stderr
    assert "FIRING EMERGENCY gpu.lost hw.status" in stderr
    assert not [line for line in stderr.splitlines() if "FIRING" in line and A in line]  # healthy GPU


@pytest.mark.slow
def test_snapshot_without_the_binding_runs_without_gpu_metrics(tmp_path: Path) -> None:
    doc, stderr = snapshot(tmp_path, SYSOPS_GPU__NVML_MODULE="tests.fakes.no_such_binding")
    names = {m["name"] for m in doc["metrics"]}
    assert "system.cpu.time" in names
    assert not {n for n in names if n.startswith(("hw.", "sysops.gpu."))}
    # Only the host-view self-check may warn (it does on a machine whose PID 1 is not an init).
    assert [line for line in stderr.splitlines() if "WARNING" in line and "_hostview" not in line] == []
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_the_agent_runs_without_the_binding_with_one_info_line(tmp_path: Path) -> None:
    port = free_port()
    environ = environment(
        tmp_path,
        SYSOPS_GPU__NVML_MODULE="tests.fakes.no_such_binding",
        SYSOPS_INTERVAL="0.2",
        SYSOPS_PROMETHEUS__PORT=str(port),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and not ready:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
                    ready = resp.status == 200
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        assert ready, "the agent never became ready"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        assert "system_cpu_time" in body
        assert "hw_temperature" not in body
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    gpu_lines = [line for line in stderr.splitlines() if "gpu" in line.lower()]
    assert len(gpu_lines) == 1, stderr
    assert "INFO" in gpu_lines[0]
    assert "plugin gpu skipped: NVML binding 'tests.fakes.no_such_binding' is not installed" in gpu_lines[0]
