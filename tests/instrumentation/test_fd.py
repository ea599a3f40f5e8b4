"""File descriptors: /proc/sys/fs/file-nr from the fixture and live."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.oneline import parse_file_nr
from instrumentation.fd import FdCollector
from tests.instrumentation.conftest import Build, Host, add, errors, key, points


def test_allocated_limit_utilization(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "fd", FdCollector)
    values = points(pipe.tick().data)
    assert values[key("sysops.fd.allocated")] == 12544
    assert values[key("sysops.fd.limit")] == 3_247_711
    assert values[key("sysops.fd.utilization")] == pytest.approx(12544 / 3_247_711)


def test_malformed_file_counts_and_reports_nothing(numa_host: Host, pipeline_for: Build) -> None:
    (numa_host.procfs / "sys" / "fs" / "file-nr").write_text("12544\t0\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "fd", FdCollector)
    assert not points(pipe.tick().data, "sysops.fd")
    assert errors(pipe, "fd") == {"malformed_line": 1}


def test_live_limit_matches_file_max(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "fd", FdCollector)
    values = points(pipe.tick().data)
    with open("/proc/sys/fs/file-max") as fh:
        assert values[key("sysops.fd.limit")] == int(fh.read())
    assert 0 < values[key("sysops.fd.utilization")] < 1


@given(st.text())
def test_parse_file_nr_never_raises(text: str) -> None:
    nr = parse_file_nr(text)
    assert nr is None or 0 <= nr.unused <= nr.allocated
