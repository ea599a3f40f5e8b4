"""CPU: the two-socket fixture through the real pipeline, exact values; live values against psutil."""

from __future__ import annotations

import os
import shutil

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.cpuinfo import parse_cpuinfo
from instrumentation._linux.oneline import parse_loadavg
from instrumentation._linux.stat import parse_stat
from instrumentation.cpu import CpuCollector
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

HZ = os.sysconf("SC_CLK_TCK")


def test_two_socket_host_counts_times_frequency_and_load(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "cpu", CpuCollector)
    values = points(pipe.tick().data)
    assert values[key("system.cpu.logical.count")] == 8
    # (package, core) pairs: (0,0) (0,1) (1,0) (1,1); two threads per core.
    assert values[key("system.cpu.physical.count")] == 4
    assert values[key("system.cpu.time", **{"cpu.mode": "user", "cpu.logical_number": 0})] == 1000 / HZ
    assert values[key("system.cpu.time", **{"cpu.mode": "interrupt", "cpu.logical_number": 6})] == 30 / HZ
    assert values[key("system.cpu.time", **{"cpu.mode": "steal", "cpu.logical_number": 7})] == 60 / HZ
    assert len(of(values, "system.cpu.time")) == 8 * 8
    # cpufreq scaling_cur_freq is in kHz: cpuN reads 1200000 + N * 100000.
    assert of(values, "system.cpu.frequency") == {
        frozenset({("cpu.logical_number", n), ("sysops.cpu.frequency.source", "cpufreq")}): (
            1_200_000 + n * 100_000
        )
        * 1e3
        for n in range(8)
    }
    assert values[key("system.cpu.load_average.1m")] == 0.52
    assert values[key("system.cpu.load_average.5m")] == 0.58
    assert values[key("system.cpu.load_average.15m")] == 0.59
    # Rates need two readings: nothing on the first tick.
    assert not of(values, "system.cpu.utilization")
    assert not of(values, "sysops.cpu.busy")
    assert not of(values, "sysops.cpu.socket.utilization")
    assert errors(pipe, "cpu") == {}


def test_second_tick_gives_utilization_busy_and_per_socket_shares(
    numa_host: Host, pipeline_for: Build
) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "cpu", CpuCollector)
    pipe.tick()
    numa_host.advance()
    values = points(pipe.tick().data)
    # Every CPU advanced 100 ticks; cpu0 spent 50 user, 10 system, 30 idle, 10 iowait.
    util = of(values, "system.cpu.utilization")
    cpu0 = {dict(a)["cpu.mode"]: v for a, v in util.items() if dict(a)["cpu.logical_number"] == 0}
    assert cpu0 == {
        "user": 0.5,
        "nice": 0.0,
        "system": 0.1,
        "idle": 0.3,
        "iowait": 0.1,
        "interrupt": 0.0,
        "softirq": 0.0,
        "steal": 0.0,
    }
    # The total line advanced 800 ticks, 500 idle and 10 iowait: 290 / 800 busy.
    assert values[key("sysops.cpu.busy")] == pytest.approx(290 / 800)
    socket = {
        (dict(a)["sysops.cpu.socket"], dict(a)["cpu.mode"]): v
        for a, v in of(values, "sysops.cpu.socket.utilization").items()
    }
    # Socket 0 (cpu0-3): user 80, nice 10, system 20, idle 280, iowait 10 of 400.
    assert socket[(0, "user")] == pytest.approx(0.2)
    assert socket[(0, "nice")] == pytest.approx(0.025)
    assert socket[(0, "idle")] == pytest.approx(0.7)
    assert socket[(0, "iowait")] == pytest.approx(0.025)
    # Socket 1 (cpu4-7): user 100, system 50, idle 220, irq 5, softirq 5, steal 20 of 400.
    assert socket[(1, "user")] == pytest.approx(0.25)
    assert socket[(1, "system")] == pytest.approx(0.125)
    assert socket[(1, "interrupt")] == pytest.approx(0.0125)
    assert socket[(1, "steal")] == pytest.approx(0.05)
    assert sum(v for (s, _), v in socket.items() if s == 1) == pytest.approx(1.0)


def test_frequency_falls_back_to_cpuinfo_and_topology_to_cpuinfo_ids(
    numa_host: Host, pipeline_for: Build
) -> None:
    # A VM: no cpufreq and no sysfs topology, only /proc/cpuinfo.
    shutil.rmtree(numa_host.sysfs / "devices" / "system" / "cpu")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "cpu", CpuCollector)
    values = points(pipe.tick().data)
    assert of(values, "system.cpu.frequency") == {
        frozenset({("cpu.logical_number", n), ("sysops.cpu.frequency.source", "cpuinfo")}): pytest.approx(
            (2100 + n * 100) * 1e6
        )
        for n in range(8)
    }
    assert values[key("system.cpu.physical.count")] == 4


def test_frequency_says_its_source_per_cpu_when_sources_are_mixed(
    numa_host: Host, pipeline_for: Build
) -> None:
    # cpu5 lost its cpufreq directory (a driver that covers only some CPUs): cpuinfo fills in.
    shutil.rmtree(numa_host.sysfs / "devices" / "system" / "cpu" / "cpu5" / "cpufreq")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "cpu", CpuCollector)
    sources = {
        dict(a)["cpu.logical_number"]: dict(a)["sysops.cpu.frequency.source"]
        for a in of(points(pipe.tick().data), "system.cpu.frequency")
    }
    assert sources == {n: "cpuinfo" if n == 5 else "cpufreq" for n in range(8)}


def test_missing_loadavg_and_malformed_lines_do_not_stop_the_family(
    numa_host: Host, pipeline_for: Build
) -> None:
    (numa_host.procfs / "loadavg").unlink()
    stat = numa_host.procfs / "stat"
    stat.write_text(stat.read_text() + "cpu9 12 x 3\ncpuX 1 2 3 4 5\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "cpu", CpuCollector)
    values = points(pipe.tick().data)
    assert not of(values, "system.cpu.load_average.1m")
    assert values[key("system.cpu.logical.count")] == 8
    assert errors(pipe, "cpu") == {"malformed_line": 2, "missing_file": 1}


def test_live_cpu_times_agree_with_psutil(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "cpu", CpuCollector)
    values = points(pipe.tick().data)
    expected = psutil.cpu_times(percpu=True)
    assert values[key("system.cpu.logical.count")] == len(expected)
    for n, times in enumerate(expected):
        ours = values[key("system.cpu.time", **{"cpu.mode": "user", "cpu.logical_number": n})]
        # Both read /proc/stat a moment apart: allow two seconds of drift.
        assert ours == pytest.approx(times.user, abs=2.0)
        ours = values[key("system.cpu.time", **{"cpu.mode": "idle", "cpu.logical_number": n})]
        assert ours == pytest.approx(times.idle, abs=2.0)
    assert values[key("system.cpu.load_average.1m")] == pytest.approx(os.getloadavg()[0], abs=1.0)
    if psutil.cpu_count(logical=False):
        assert values[key("system.cpu.physical.count")] == psutil.cpu_count(logical=False)


@given(st.text())
def test_parse_stat_never_raises(text: str) -> None:
    parse_stat(text)


@given(st.text(), st.integers(min_value=0, max_value=4000))
def test_parse_cpuinfo_never_raises_even_truncated(text: str, cut: int) -> None:
    parse_cpuinfo(text)
    real = "processor\t: 0\ncpu MHz\t\t: 2100.000\nphysical id\t: 0\ncore id\t\t: 1\n"
    info = parse_cpuinfo(real[: cut % (len(real) + 1)])
    assert all(v >= 0 for v in info.mhz.values())


@given(st.text())
def test_parse_loadavg_never_raises(text: str) -> None:
    load = parse_loadavg(text)
    assert load is None or min(load.m1, load.m5, load.m15) >= 0


def test_parse_loadavg_reads_the_three_averages() -> None:
    load = parse_loadavg("0.52 0.58 0.59 2/389 28751\n")
    assert load is not None
    assert (load.m1, load.m5, load.m15) == (0.52, 0.58, 0.59)
    assert parse_loadavg("0.52 nan 1") is None
    assert parse_loadavg("0.52") is None
