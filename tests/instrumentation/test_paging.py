"""Swap and paging: the fixture's meminfo, swaps and vmstat through the real pipeline; live vs psutil."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.swaps import parse_swaps
from instrumentation._linux.vmstat import parse_vmstat
from instrumentation.memory import MemoryCollector
from instrumentation.paging import PagingCollector
from otel_sysops.plugin import TickFiles
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

KB = 1024
STATE = "system.paging.state"


def test_usage_utilization_faults_and_operations(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "paging", PagingCollector)
    values = points(pipe.tick().data, "system.paging")
    # Per swap area only (/proc/swaps sizes are KiB): no host-wide series beside them, so sum()
    # gives SwapTotal 8388604 kB once (used 2097152 + free 6291452 kB, as meminfo says).
    usage = of(values, "system.paging.usage")
    assert sum(usage.values()) == 8_388_604 * KB
    assert sum(v for k, v in usage.items() if (STATE, "used") in k) == 2_097_152 * KB
    assert usage == {
        frozenset({(STATE, "used"), ("system.device", "/dev/sda3")}): 1_048_576 * KB,
        frozenset({(STATE, "free"), ("system.device", "/dev/sda3")}): 3_145_724 * KB,
        frozenset({(STATE, "used"), ("system.device", "/swap file")}): 1_048_576 * KB,
        frozenset({(STATE, "free"), ("system.device", "/swap file")}): 3_145_728 * KB,
    }
    assert key("system.paging.utilization", **{STATE: "used"}) not in values
    assert values[key("system.paging.utilization", **{STATE: "used", "system.device": "/swap file"})] == 0.25
    fault = "system.paging.fault.type"
    # pgfault counts major faults too: minor = 900000000 - 45000.
    assert of(values, "system.paging.faults") == {
        frozenset({(fault, "minor")}): 899_955_000,
        frozenset({(fault, "major")}): 45_000,
    }
    direction = "system.paging.direction"
    assert of(values, "system.paging.operations") == {
        frozenset({(direction, "in"), (fault, "major")}): 5_000,
        frozenset({(direction, "out"), (fault, "major")}): 12_000,
        frozenset({(direction, "in"), (fault, "minor")}): 123_456_789,
        frozenset({(direction, "out"), (fault, "minor")}): 987_654_321,
    }
    assert errors(pipe, "paging") == {}


class CountingFiles(TickFiles):
    """The pipeline's tick cache, counting the reads that reach the filesystem."""

    def __init__(self) -> None:
        super().__init__()
        self.disk_reads: Counter[Path] = Counter()

    def read_text(self, path: Path) -> str:
        if path not in self._cache:
            self.disk_reads[path] += 1
        return super().read_text(path)


def test_meminfo_is_read_once_per_tick_for_memory_and_paging(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    files = pipe.files = CountingFiles()
    add(pipe, settings, "memory", MemoryCollector)
    add(pipe, settings, "paging", PagingCollector)
    for _ in range(3):
        values = points(pipe.tick().data)
    assert of(values, "system.memory.usage")
    assert of(values, "system.paging.usage")
    assert files.disk_reads[numa_host.procfs / "meminfo"] == 3


def test_no_swap_gives_usage_but_no_utilization(numa_host: Host, pipeline_for: Build) -> None:
    meminfo = numa_host.procfs / "meminfo"
    text = meminfo.read_text().replace("SwapTotal:       8388604", "SwapTotal:             0")
    meminfo.write_text(text.replace("SwapFree:        6291452", "SwapFree:              0"))
    (numa_host.procfs / "swaps").write_text("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "paging", PagingCollector)
    values = points(pipe.tick().data, "system.paging")
    assert values[key("system.paging.usage", **{STATE: "used"})] == 0
    assert not of(values, "system.paging.utilization")


def test_live_swap_and_faults_agree_with_psutil(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "paging", PagingCollector)
    values = points(pipe.tick().data)
    swap = psutil.swap_memory()
    assert values[key("system.paging.usage", **{STATE: "used"})] == pytest.approx(swap.used, abs=16 * 2**20)
    assert values[key("system.paging.usage", **{STATE: "free"})] == pytest.approx(swap.free, abs=16 * 2**20)


def test_parse_swaps_unescapes_and_counts_bad_lines() -> None:
    swaps = parse_swaps("Filename Type Size Used Priority\n/dev/sda3 partition 10 2 -2\n/x file ten 2 -1\n")
    assert [(a.device, a.size, a.used) for a in swaps.areas] == [("/dev/sda3", 10 * KB, 2 * KB)]
    assert swaps.malformed == 1


@given(st.text(), st.integers(min_value=0, max_value=500))
def test_parse_swaps_and_vmstat_never_raise_even_truncated(text: str, cut: int) -> None:
    parse_swaps(text)
    parse_vmstat(text)
    real = "Filename\tType\tSize\tUsed\tPriority\n/dev/sda3  partition\t4194300\t1048576\t-2\n"
    assert all(a.size >= 0 for a in parse_swaps(real[: cut % (len(real) + 1)]).areas)
    vm = "pgfault 900000000\npgmajfault 45000\n"
    parse_vmstat(vm[: cut % (len(vm) + 1)])


def test_host_wide_usage_only_when_no_swap_area_is_listed(numa_host: Host, pipeline_for: Build) -> None:
    # /proc/swaps with its header only (no area readable): SwapTotal/SwapFree stand in, once.
    swaps = numa_host.procfs / "swaps"
    swaps.write_text(swaps.read_text().splitlines()[0] + "\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "paging", PagingCollector)
    values = points(pipe.tick().data, "system.paging")
    assert of(values, "system.paging.usage") == {
        frozenset({(STATE, "used")}): 2_097_152 * KB,
        frozenset({(STATE, "free")}): 6_291_452 * KB,
    }
    assert values[key("system.paging.utilization", **{STATE: "used"})] == pytest.approx(2_097_152 / 8_388_604)
