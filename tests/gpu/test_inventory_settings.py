"""The inventory reads GPUs through the configured NVML binding and under the configured sysfs,
and reports the CPU counts the cpu collector's metrics report (one reader for both)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from otel_sysops.inventory import Roots, collect_inventory
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from tests.fakes import fake_nvml
from tests.gpu.conftest import UUID
from tests.points import number_points

HOST = Path(__file__).resolve().parents[1] / "fixtures" / "inventory-host"


def _no_dmidecode(dmi_type: str) -> str | None:
    return None


def test_inventory_uses_the_gpu_settings_and_the_sysfs_root(
    sysfs: Path, make_settings: Callable[..., Settings]
) -> None:
    fake_nvml.reset()
    settings = make_settings(sysfs=sysfs, gpu={"nvml_module": "tests.fakes.fake_nvml"})
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    doc = collect_inventory(roots, "gpu-host", dmidecode=_no_dmidecode, environ={}, settings=settings)
    assert [g["uuid"] for g in doc["gpus"]] == UUID
    # NUMA nodes come from the configured sysfs root (the fake tree), not the machine's /sys.
    assert [g["numa_node"] for g in doc["gpus"]][:3] == [0, 1, None]
    off = make_settings(sysfs=sysfs, gpu={"enabled": False, "nvml_module": "tests.fakes.fake_nvml"})
    assert collect_inventory(roots, "h", dmidecode=_no_dmidecode, environ={}, settings=off)["gpus"] is None


def test_inventory_cpu_counts_are_the_collectors(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    # The fixture host with one more CPU present in sysfs but offline (absent from /proc/stat),
    # on a second socket: counted by a sysfs-directory walk, not by the collector.
    host = tmp_path / "host"
    shutil.copytree(HOST, host, symlinks=True)
    topo = host / "sys/devices/system/cpu/cpu8/topology"
    topo.mkdir(parents=True)
    (topo / "physical_package_id").write_text("7\n")
    (topo / "core_id").write_text("9\n")
    settings = make_settings(
        procfs=host / "proc",
        sysfs=host / "sys",
        host_root=host / "host",
        instrumentation={"enabled": ["cpu"]},
        analyzers={"enabled": False},
    )
    pipe = Pipeline(settings)
    try:
        result = pipe.tick()
    finally:
        pipe.close(2.0)
    metrics = {
        m.name: float(p.value) for m, p in number_points(result.data) if m.name.startswith("system.cpu.")
    }
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    cpu = collect_inventory(roots, "h", dmidecode=_no_dmidecode, environ={}, settings=settings)["cpu"]
    assert cpu["threads"] == metrics["system.cpu.logical.count"] == 8
    assert cpu["cores"] == metrics["system.cpu.physical.count"] == 4
    assert cpu["sockets"] == 2
