"""The CPU and memory collectors: pure parsers on literal text, and robustness to any input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.meminfo import parse_meminfo
from instrumentation._linux.stat import parse_stat
from instrumentation.cpu import CpuCollector, utilization
from instrumentation.memory import MemoryCollector, memory_states
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings
from tests.points import number_points

STAT_1 = """cpu  100 0 50 800 50 0 0 0 0 0
cpu0 60 0 30 400 10 0 0 0 0 0
cpu1 40 0 20 400 40 0 0 0 0 0
intr 12345 0 0
ctxt 999
btime 1700000000
processes 4242
procs_running 3
procs_blocked 1
"""
STAT_2 = """cpu  200 0 100 1600 100 0 0 0 0 0
cpu0 160 0 30 500 10 0 0 0 0 0
cpu1 40 0 70 1100 90 0 0 0 0 0
garbage line here
cpuX 1 2 3
"""
MEMINFO = """MemTotal:       16000000 kB
MemFree:         4000000 kB
MemAvailable:   10000000 kB
Buffers:          500000 kB
Cached:          5000000 kB
SReclaimable:     500000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
broken
"""


def test_parse_stat_reads_cpu_lines_and_counters_and_counts_malformed() -> None:
    stat = parse_stat(STAT_1)
    assert stat.cpus[-1]["idle"] == 800
    assert stat.cpus[1]["iowait"] == 40
    assert stat.counters == {
        "ctxt": 999,
        "btime": 1700000000,
        "processes": 4242,
        "procs_running": 3,
        "procs_blocked": 1,
    }
    assert stat.malformed == 0
    assert parse_stat(STAT_2).malformed == 1  # "cpuX"; unknown keys are ignored, not errors


def test_utilization_is_each_modes_share_of_elapsed_ticks() -> None:
    util = utilization(parse_stat(STAT_1), parse_stat(STAT_2))
    assert util[0]["user"] == 100 / 200
    assert util[0]["idle"] == 100 / 200
    assert util[1]["system"] == 50 / 800
    assert util[1]["idle"] == 700 / 800
    assert util[1]["iowait"] == 50 / 800
    assert abs(sum(util[-1].values()) - 1.0) < 1e-12


def test_memory_states_add_up_to_memtotal() -> None:
    info = parse_meminfo(MEMINFO)
    assert info.malformed == 1
    states = memory_states(info)
    assert states == {
        "used": 6_000_000 * 1024,
        "free": 4_000_000 * 1024,
        "buffers": 500_000 * 1024,
        "cached": 5_500_000 * 1024,
    }
    assert sum(states.values()) == info.values["MemTotal"]


def test_collectors_through_the_sdk_on_a_frozen_proc(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "stat").write_text(STAT_1)
    (tmp_path / "meminfo").write_text(MEMINFO)
    settings = make_settings(procfs=str(tmp_path))
    pipe = Pipeline(settings, load=False)
    pipe.add_collector("cpu", CpuCollector(CollectorContext("cpu", settings, pipe.files, pipe.errors)))
    pipe.add_collector(
        "memory", MemoryCollector(CollectorContext("memory", settings, pipe.files, pipe.errors))
    )
    pipe.tick()
    (tmp_path / "stat").write_text(STAT_2)
    data = pipe.tick().data
    points = {(m.name, tuple(sorted((p.attributes or {}).items()))): p.value for m, p in number_points(data)}
    assert points[("system.cpu.utilization", (("cpu.logical_number", 0), ("cpu.mode", "user")))] == 0.5
    assert points[("system.cpu.logical.count", ())] == 2
    assert points[("system.memory.usage", (("system.memory.state", "used"),))] == 6_000_000 * 1024
    assert points[("system.memory.limit", ())] == 16_000_000 * 1024
    assert points[("system.memory.linux.available", ())] == 10_000_000 * 1024
    errors = pipe.errors.snapshot()
    assert errors[("cpu", "malformed_line")] == 1
    assert errors[("memory", "malformed_line")] == 2
    pipe.close(1.0)


@given(st.text())
def test_parse_stat_never_raises(text: str) -> None:
    parse_stat(text)


@given(st.text())
def test_parse_meminfo_never_raises(text: str) -> None:
    parse_meminfo(text)


@given(st.integers(0, len(STAT_1)), st.integers(0, len(MEMINFO)))
def test_truncated_files_never_raise(cut_stat: int, cut_mem: int) -> None:
    parse_stat(STAT_1[:cut_stat])
    memory_states(parse_meminfo(MEMINFO[:cut_mem]))
