"""The collectors of this issue as the agent loads them (entry points) on the live machine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings

from ._collect import names


def test_entry_points_load_and_report_on_this_machine(make_settings: Callable[..., Settings]) -> None:
    pipe = Pipeline(make_settings())
    try:
        assert {"network", "process"} <= set(pipe.collectors)
        cgroup2 = any(
            (Path("/sys/fs/cgroup") / sub / "cgroup.controllers").exists() for sub in ("", "unified")
        )
        assert ("cgroup" in pipe.collectors) == cgroup2
        pipe.tick()
        result = pipe.tick()
        assert result.failed == {}
        got = names(result.data)
        assert {
            "system.network.io",
            "system.network.connection.count",
            "sysops.tcp.retransmits",
            "system.process.count",
            "system.process.created",
            "process.memory.usage",
            "process.cpu.utilization",
        } <= got
        if cgroup2:
            # container.* for the groups that are containers, sysops.cgroup.* for the others.
            assert {"container.cpu.time", "sysops.cgroup.cpu.time"} & got
    finally:
        pipe.close(1.0)
