"""Settings of the host collectors (`[instrumentation]`, `SYSOPS_INSTRUMENTATION__*`)."""

from __future__ import annotations

from ._base import Section
from ._instrumentation_net import CgroupSettings, NetworkSettings, ProcessSettings


class InstrumentationSettings(Section):
    """Which collectors run; per-family options live beside them."""

    # Entry-point names to run; None runs every collector the host supports.
    enabled: list[str] | None = None
    # Entry-point names never to run, applied after `enabled`.
    disabled: list[str] = []
    network: NetworkSettings = NetworkSettings()
    process: ProcessSettings = ProcessSettings()
    cgroup: CgroupSettings = CgroupSettings()
