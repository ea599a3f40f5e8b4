"""Fixtures of the GPU tests: a sysfs tree with the fake GPUs' NUMA nodes, a pipeline with the collector."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricsData

from instrumentation.gpu import GpuCollector
from otel_sysops.alerts import Finding
from otel_sysops.pipeline import Pipeline, iter_points
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings
from tests.fakes.fake_nvml import FakeNvml, as_nvml
from tests.points import number_points

# The fake fleet's PCI devices as the kernel names them, with their NUMA nodes (-1: none).
NUMA = {"0000:07:00.0": "0\n", "0000:0f:00.0": "1\n", "0000:41:00.0": "-1\n"}
UUID = [
    "GPU-11111111-2222-3333-4444-555555555555",
    "GPU-66666666-7777-8888-9999-000000000000",
    "GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "GPU-index-3",
]


def make_sysfs(root: Path) -> Path:
    """Write /sys/bus/pci/devices/<bus id>/numa_node for the fake GPUs under `root`."""
    (root / "devices").mkdir(parents=True, exist_ok=True)  # what makes a tree look like a sysfs
    for bus_id, node in NUMA.items():
        device = root / "bus" / "pci" / "devices" / bus_id
        device.mkdir(parents=True)
        (device / "numa_node").write_text(node)
    return root


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    return make_sysfs(tmp_path / "sys")


class RecordingAlertSink:
    """An AlertSink that keeps every finding it is given."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self._lock = threading.Lock()

    def submit(self, finding: Finding) -> None:
        with self._lock:
            self.findings.append(finding)

    def firing(self, rule: str, uuid: str) -> list[Finding]:
        # A sensor's finding (the temperature) names its GPU through hw.parent.
        return [
            f
            for f in self.findings
            if f.rule == rule
            and uuid in (f.attributes.get("hw.id"), f.attributes.get("hw.parent"))
            and f.firing
        ]


@dataclass
class GpuRig:
    """A pipeline (real SDK, ring store) with the GPU collector over a fake NVML."""

    pipeline: Pipeline
    collector: GpuCollector
    nvml: FakeNvml
    alerts: RecordingAlertSink
    settings: Settings
    closed: bool = False
    ticks: list[float] = field(default_factory=list)

    def tick(self) -> MetricsData:
        ts = 1_000_000.0 + 10.0 * len(self.ticks)
        self.ticks.append(ts)
        return self.pipeline.tick(ts).data


@pytest.fixture
def rig(make_settings: Callable[..., Settings], sysfs: Path) -> Iterator[Callable[..., GpuRig]]:
    rigs: list[GpuRig] = []

    def build(nvml: FakeNvml | None = None, **gpu: Any) -> GpuRig:
        # The rig exercises gpu_rules on its own, as deployed with the threshold analyzer off, so
        # its temperature and memory rules are on unless a test says otherwise.
        gpu = {"rules_temperature_memory": True, **gpu}
        settings = make_settings(interval=10.0, sysfs=sysfs, gpu=gpu)
        alerts = RecordingAlertSink()
        pipeline = Pipeline(settings, alert_sink=alerts, load=False)
        fake = nvml or FakeNvml()
        collector = GpuCollector(
            CollectorContext("gpu", settings, pipeline.files, pipeline.errors), nvml=as_nvml(fake)
        )
        pipeline.add_collector("gpu", collector)
        made = GpuRig(pipeline, collector, fake, alerts, settings)
        rigs.append(made)
        return made

    yield build
    for made in rigs:
        made.pipeline.close(2.0)


def points(data: MetricsData, name: str) -> dict[frozenset[tuple[str, Any]], float]:
    """Return every point of metric `name`: attributes -> value."""
    return {
        frozenset((p.attributes or {}).items()): float(p.value)
        for m, p in number_points(data)
        if m.name == name
    }


def of_gpu(data: MetricsData, name: str, uuid: str, **extra: Any) -> list[float]:
    """Return the values of `name` for the GPU `uuid` (or its sensor) whose attributes include `extra`."""
    out = []
    for attrs, value in points(data, name).items():
        a = dict(attrs)
        if uuid in (a.get("hw.id"), a.get("hw.parent")) and all(a.get(k) == v for k, v in extra.items()):
            out.append(value)
    return out


def units(data: MetricsData) -> dict[str, str | None]:
    return {m.name: m.unit for m, _ in iter_points(data)}
