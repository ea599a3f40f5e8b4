"""Disk: the fixture's diskstats through the real pipeline, exact values; live counters vs psutil."""

from __future__ import annotations

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.diskstats import parse_diskstats
from instrumentation.disk import DiskCollector
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

DEV = "system.device"
DIR = "disk.io.direction"


def test_whole_devices_only_with_bytes_operations_times_and_merges(
    numa_host: Host, pipeline_for: Build
) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "disk", DiskCollector)
    values = points(pipe.tick().data, "system.disk")
    # Partitions have no /sys/block entry; loop0 and ram0 are excluded by the default patterns.
    assert {dict(a)[DEV] for a in of(values, "system.disk.io")} == {"sda", "nvme0n1", "dm-0"}
    assert values[key("system.disk.io", **{DEV: "sda", DIR: "read"})] == 80_000 * 512
    assert values[key("system.disk.io", **{DEV: "sda", DIR: "write"})] == 160_000 * 512
    assert values[key("system.disk.operations", **{DEV: "sda", DIR: "read"})] == 1000
    assert values[key("system.disk.operations", **{DEV: "nvme0n1", DIR: "write"})] == 100
    assert values[key("system.disk.operation_time", **{DEV: "sda", DIR: "write"})] == 8.0
    assert values[key("system.disk.merged", **{DEV: "sda", DIR: "write"})] == 300
    assert values[key("system.disk.io_time", **{DEV: "sda"})] == 9.0
    assert values[key("system.disk.io_time", **{DEV: "dm-0"})] == 1.5
    # sysfs-block `size` is in 512-byte sectors; dm-0 has none in the fixture and is left out.
    assert of(values, "system.disk.limit") == {
        frozenset({(DEV, "sda")}): 1_953_525_168 * 512,
        frozenset({(DEV, "nvme0n1")}): 1_000_215_216 * 512,
    }
    assert errors(pipe, "disk") == {}


def test_average_operation_time_over_the_last_tick(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "disk", DiskCollector)
    assert not of(points(pipe.tick().data), "sysops.disk.operation_time.average")
    numa_host.advance()
    values = of(points(pipe.tick().data), "sysops.disk.operation_time.average")
    # sda: 10 reads took 500 ms, 4 writes 800 ms; nvme0n1: no read, 50 writes in 50 ms; dm-0 idle.
    assert values == {
        frozenset({(DEV, "sda"), (DIR, "read")}): pytest.approx(0.05),
        frozenset({(DEV, "sda"), (DIR, "write")}): pytest.approx(0.2),
        frozenset({(DEV, "nvme0n1"), (DIR, "read")}): 0.0,
        frozenset({(DEV, "nvme0n1"), (DIR, "write")}): pytest.approx(0.001),
        frozenset({(DEV, "dm-0"), (DIR, "read")}): 0.0,
        frozenset({(DEV, "dm-0"), (DIR, "write")}): 0.0,
    }


def test_include_and_exclude_patterns(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(
        numa_host, instrumentation={"disk": {"include": ["^(sd|loop)"], "exclude": []}}
    )
    add(pipe, settings, "disk", DiskCollector)
    values = points(pipe.tick().data)
    assert {dict(a)[DEV] for a in of(values, "system.disk.io_time")} == {"sda", "loop0"}


def test_bad_pattern_is_a_config_error_naming_the_field(pipeline_for: Build) -> None:
    from otel_sysops.errors import ConfigError

    with pytest.raises(ConfigError, match=r"instrumentation\.disk\.exclude.*regular expression"):
        pipeline_for(None, instrumentation={"disk": {"exclude": ["(unclosed"]}})


def test_malformed_lines_are_skipped_and_counted(numa_host: Host, pipeline_for: Build) -> None:
    path = numa_host.procfs / "diskstats"
    path.write_text(path.read_text() + "   8  16 sdb 1 2 3\n   8 x sdc 1 2 3 4 5 6 7 8 9 10 11\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "disk", DiskCollector)
    values = points(pipe.tick().data)
    assert values[key("system.disk.io_time", **{DEV: "sda"})] == 9.0
    assert errors(pipe, "disk") == {"malformed_line": 2}


def test_live_counters_agree_with_psutil(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "disk", DiskCollector)
    values = points(pipe.tick().data)
    theirs = psutil.disk_io_counters(perdisk=True)
    devices = {dict(a)[DEV] for a in of(values, "system.disk.io_time")}
    assert devices, "no whole disk found on this machine"
    for dev in devices:
        counters = theirs[dev]
        # Other processes write between the two reads: allow a little drift.
        assert values[key("system.disk.operations", **{DEV: dev, DIR: "read"})] == pytest.approx(
            counters.read_count, abs=50
        )
        assert values[key("system.disk.io", **{DEV: dev, DIR: "read"})] == pytest.approx(
            counters.read_bytes, abs=16 * 2**20
        )
        assert values[key("system.disk.io", **{DEV: dev, DIR: "write"})] == pytest.approx(
            counters.write_bytes, rel=0.01, abs=64 * 2**20
        )


def test_parse_diskstats_reads_the_old_eleven_field_layout() -> None:
    stats = parse_diskstats("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n")
    assert stats.devices["sda"]["io_ms"] == 10
    assert "discards" not in stats.devices["sda"]


@given(st.text(), st.integers(min_value=0, max_value=400))
def test_parse_diskstats_never_raises_even_truncated(text: str, cut: int) -> None:
    parse_diskstats(text)
    real = " 259 0 nvme0n1 500 0 40000 250 100 5 8000 300 0 400 550 0 0 0 0 50 10\n"
    stats = parse_diskstats(real[: cut % (len(real) + 1)])
    assert all(v >= 0 for c in stats.devices.values() for v in c.values())


def _diskstats_line(host: Host, device: str) -> list[int]:
    """A second reading of the fixture: the numbers after the name on the device's line."""
    for line in (host.procfs / "diskstats").read_text().splitlines():
        parts = line.split()
        if parts[2] == device:
            return [int(v) for v in parts[3:]]
    raise AssertionError(device)


def test_in_flight_weighted_time_discards_and_flushes(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "disk", DiskCollector)
    values = points(pipe.tick().data, "sysops.disk")
    for device in ("sda", "nvme0n1", "dm-0"):
        raw = _diskstats_line(numa_host, device)
        # iostats.rst field order: 9 in flight, 11 weighted ms, 12-15 discards, 16-17 flushes.
        assert values[key("sysops.disk.operations.in_progress", **{DEV: device})] == raw[8]
        assert values[key("sysops.disk.io_time.weighted", **{DEV: device})] == pytest.approx(raw[10] / 1e3)
        assert values[key("sysops.disk.discard.operations", **{DEV: device})] == raw[11]
        assert values[key("sysops.disk.discard.merged", **{DEV: device})] == raw[12]
        assert values[key("sysops.disk.discard.io", **{DEV: device})] == raw[13] * 512
        assert values[key("sysops.disk.discard.time", **{DEV: device})] == pytest.approx(raw[14] / 1e3)
        assert values[key("sysops.disk.flush.operations", **{DEV: device})] == raw[15]
        assert values[key("sysops.disk.flush.time", **{DEV: device})] == pytest.approx(raw[16] / 1e3)


def test_a_device_without_sysfs_entry_is_counted_not_dropped_silently(
    numa_host: Host, pipeline_for: Build
) -> None:
    stats = numa_host.procfs / "diskstats"
    stats.write_text(stats.read_text() + " 259 5 nvme9n1 10 0 80 1 0 0 0 0 0 1 1 0 0 0 0 0 0\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "disk", DiskCollector)
    pipe.tick()
    values = points(pipe.tick().data, "system.disk")
    assert "nvme9n1" not in {dict(a)[DEV] for a in of(values, "system.disk.io")}
    # Counted once per device name, not per tick; the partitions (sda1, nvme0n1p1) are not counted.
    assert errors(pipe, "disk") == {"no_sysfs_entry": 1}
