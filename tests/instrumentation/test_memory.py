"""Memory: the NUMA fixture through the real pipeline, exact values; live values against psutil."""

from __future__ import annotations

import shutil

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.meminfo import parse_meminfo
from instrumentation.memory import MemoryCollector
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

KB = 1024
STATE = "system.memory.state"


def test_usage_slab_shared_and_hugepages_from_meminfo(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "memory", MemoryCollector)
    values = points(pipe.tick().data, "system.memory")
    # used = MemTotal 65536000 - MemAvailable 40000000 (the semantic conventions' definition, not
    # total - free - buffers - cached = 29036000); cached = Cached 15000000 + SReclaimable 1000000.
    assert of(values, "system.memory.usage") == {
        frozenset({(STATE, "used")}): 25_536_000 * KB,
        frozenset({(STATE, "free")}): 20_000_000 * KB,
        frozenset({(STATE, "buffers")}): 500_000 * KB,
        frozenset({(STATE, "cached")}): 16_000_000 * KB,
    }
    assert values[key("system.memory.utilization", **{STATE: "used"})] == pytest.approx(
        25_536_000 / 65_536_000
    )
    assert values[key("system.memory.limit")] == 65_536_000 * KB
    assert values[key("system.memory.linux.available")] == 40_000_000 * KB
    slab = "system.memory.linux.slab.state"
    assert values[key("system.memory.linux.slab.usage", **{slab: "reclaimable"})] == 1_000_000 * KB
    assert values[key("system.memory.linux.slab.usage", **{slab: "unreclaimable"})] == 500_000 * KB
    assert values[key("system.memory.linux.shared")] == 250_000 * KB
    huge = "system.memory.linux.hugepages.state"
    assert values[key("system.memory.linux.hugepages.limit")] == 512
    assert values[key("system.memory.linux.hugepages.page_size")] == 2048 * KB
    assert values[key("system.memory.linux.hugepages.reserved")] == 64
    assert values[key("system.memory.linux.hugepages.surplus")] == 2
    assert values[key("system.memory.linux.hugepages.usage", **{huge: "used"})] == 384
    assert values[key("system.memory.linux.hugepages.usage", **{huge: "free"})] == 128
    assert values[key("system.memory.linux.hugepages.utilization")] == 0.75
    assert errors(pipe, "memory") == {}


def test_per_numa_node_usage_and_limit(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "memory", MemoryCollector)
    values = points(pipe.tick().data, "sysops.memory")
    node = "sysops.numa.node"
    # Node 0: cached = FilePages 8000000 + SReclaimable 600000; used = 32768000 - 12000000 - 8600000.
    assert of(values, "sysops.memory.numa.usage") == {
        frozenset({(node, 0), (STATE, "used")}): 12_168_000 * KB,
        frozenset({(node, 0), (STATE, "free")}): 12_000_000 * KB,
        frozenset({(node, 0), (STATE, "cached")}): 8_600_000 * KB,
        frozenset({(node, 1), (STATE, "used")}): 16_868_000 * KB,
        frozenset({(node, 1), (STATE, "free")}): 8_000_000 * KB,
        frozenset({(node, 1), (STATE, "cached")}): 7_900_000 * KB,
    }
    assert of(values, "sysops.memory.numa.limit") == {
        frozenset({(node, 0)}): 32_768_000 * KB,
        frozenset({(node, 1)}): 32_768_000 * KB,
    }


def test_no_numa_directory_leaves_host_memory_intact(numa_host: Host, pipeline_for: Build) -> None:
    shutil.rmtree(numa_host.sysfs / "devices" / "system" / "node")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "memory", MemoryCollector)
    values = points(pipe.tick().data)
    assert not of(values, "sysops.memory.numa.usage")
    assert values[key("system.memory.limit")] == 65_536_000 * KB


def test_live_memory_agrees_with_psutil(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "memory", MemoryCollector)
    values = points(pipe.tick().data)
    vm = psutil.virtual_memory()
    assert values[key("system.memory.limit")] == vm.total
    tolerance = 64 * 1024 * 1024  # memory moves between the two reads
    assert values[key("system.memory.usage", **{STATE: "free"})] == pytest.approx(vm.free, abs=tolerance)
    assert values[key("system.memory.linux.available")] == pytest.approx(vm.available, abs=tolerance)
    assert values[key("system.memory.usage", **{STATE: "buffers"})] == pytest.approx(
        vm.buffers, abs=tolerance
    )
    assert values[key("system.memory.linux.shared")] == pytest.approx(vm.shared, abs=tolerance)


@given(st.text(), st.integers(min_value=0, max_value=2000))
def test_parse_meminfo_never_raises_even_truncated(text: str, cut: int) -> None:
    parse_meminfo(text)
    real = "MemTotal:       65536000 kB\nNode 0 MemFree:  12000000 kB\nHugePages_Total:     512\n"
    info = parse_meminfo(real[: cut % (len(real) + 1)])
    assert all(v >= 0 for v in info.values.values())
