"""The inventory's face on the collectors: the CPU counts and the GPUs, read by the same code the
metrics come from, so `otel-sysops inventory` and `system.cpu.*.count` never disagree.

The core reaches these through the `otel_sysops.inventory` entry-point group (it never imports a
plugin); each function takes the agent's settings, so every root and the `[gpu]` section apply.
"""

from __future__ import annotations

import time
from typing import Any

from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings

from .cpu import CpuCollector


def cpu_counts(settings: Settings) -> dict[str, int | None]:
    """Return sockets, physical cores and logical CPUs online, as the cpu collector reports them."""
    collector = CpuCollector(CollectorContext("cpu", settings))
    try:
        snap = collector.sample(time.monotonic())
        sockets = collector.sockets
    finally:
        collector.close()
    threads = sum(1 for cpu in snap.stat.cpus if cpu >= 0)
    return {
        "sockets": len(set(sockets.values())) or None,
        "cores": snap.physical_cores,
        "threads": threads or None,
    }


def gpu_devices(settings: Settings) -> list[dict[str, Any]] | None:
    """Return the GPUs through the configured NVML binding under the configured sysfs (None: gpu off)."""
    if not settings.gpu.enabled:
        return None
    from .gpu import gpu_inventory  # the NVML binding is optional: imported only when asked

    return list(gpu_inventory(settings.gpu.nvml_module, settings.sysfs))
