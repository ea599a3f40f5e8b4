"""Every collector of this family set, fed random or truncated text in every source file, through
the real pipeline: no collector fails, nothing escapes, the tick completes."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instrumentation.cpu import CpuCollector
from instrumentation.disk import DiskCollector
from instrumentation.fd import FdCollector
from instrumentation.filesystem import FilesystemCollector
from instrumentation.hardware import HardwareCollector
from instrumentation.memory import MemoryCollector
from instrumentation.paging import PagingCollector
from instrumentation.pressure import PressureCollector
from instrumentation.system import SystemCollector
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Collector, CollectorContext
from otel_sysops.settings import Settings, load_settings
from tests.conftest import FIXTURES

COLLECTORS: dict[str, type[Collector[Any]]] = {
    "cpu": CpuCollector,
    "memory": MemoryCollector,
    "paging": PagingCollector,
    "disk": DiskCollector,
    "filesystem": FilesystemCollector,
    "pressure": PressureCollector,
    "fd": FdCollector,
    "system": SystemCollector,
    "hardware": HardwareCollector,
}


def _fixture_files() -> list[str]:
    out = []
    for source in ("numa2-edac", "psi-host"):
        base = FIXTURES / source
        relative = (str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
        out += [rel for rel in relative if not rel.startswith("tick2")]
    return sorted(set(out))


FILES = _fixture_files()


def _host(root: Path) -> Settings:
    shutil.copytree(FIXTURES / "numa2-edac", root, ignore=shutil.ignore_patterns("tick2"))
    shutil.copytree(FIXTURES / "psi-host", root, dirs_exist_ok=True)
    return load_settings(
        None,
        {
            "procfs": root / "proc",
            "sysfs": root / "sys",
            "host_root": root,
            "prometheus": {"enabled": False},
            "instrumentation": {"filesystem": {"timeout": 0.5}},
        },
        environ={},
    )


def _stat_table(path: str, /) -> os.statvfs_result:
    return os.statvfs_result((4096, 4096, 100, 50, 40, 10, 5, 5, 0, 255))


def _run(mutate: Callable[[Path], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "host"
        settings = _host(root)
        pipe = Pipeline(settings, load=False)
        try:
            for name, cls in COLLECTORS.items():
                ctx = CollectorContext(name, settings, pipe.files, pipe.errors)
                collector = (
                    FilesystemCollector(ctx, statvfs=_stat_table) if cls is FilesystemCollector else cls(ctx)
                )
                pipe.add_collector(name, collector)
            assert pipe.tick().failed == {}
            mutate(root)
            result = pipe.tick()
            assert result.failed == {}, result.failed
        finally:
            pipe.close(1.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.text())
def test_random_text_in_any_source_never_fails_a_collector(rel: str, text: str) -> None:
    def mutate(root: Path) -> None:
        (root / rel).write_text(text)

    _run(mutate)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.floats(min_value=0, max_value=1))
def test_truncated_sources_never_fail_a_collector(rel: str, share: float) -> None:
    def mutate(root: Path) -> None:
        path = root / rel
        text = path.read_text()
        path.write_text(text[: int(len(text) * share)])

    _run(mutate)


# The one file each family cannot do without; losing it mid-run is the pipeline's business (the
# family reports nothing that tick, one WARNING line), every other source is optional.
PRIMARY = {
    "proc/stat",
    "proc/meminfo",
    "proc/diskstats",
    "proc/sys/fs/file-nr",
    "proc/uptime",
    "proc/1/mountinfo",
}


def test_vanished_optional_sources_never_fail_a_collector() -> None:
    def mutate(root: Path) -> None:
        for rel in FILES:
            if rel not in PRIMARY:
                (root / rel).unlink()

    _run(mutate)


def test_entry_points_load_every_family_on_the_fixture_host(tmp_path: Path) -> None:
    settings = _host(tmp_path / "host")
    pipe = Pipeline(settings)  # loads the `otel_sysops.instrumentation` entry points
    try:
        assert set(COLLECTORS) <= set(pipe.collectors)
        pipe.tick()
        shutil.copytree(FIXTURES / "numa2-edac" / "tick2", tmp_path / "host", dirs_exist_ok=True)
        result = pipe.tick()
        assert not set(result.failed) & set(COLLECTORS)
        names = {m.name for rm in result.data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        for name in (
            "sysops.cpu.busy",
            "sysops.memory.numa.usage",
            "system.paging.utilization",
            "sysops.disk.operation_time.average",
            "sysops.pressure.stall.ratio",
            "sysops.fd.utilization",
            "system.uptime",
            "hw.errors",
            "hw.temperature",
        ):
            assert name in names, name
    finally:
        pipe.close(1.0)
