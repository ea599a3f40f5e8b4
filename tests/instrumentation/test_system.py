"""System uptime from /proc/uptime."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.oneline import parse_uptime
from instrumentation.system import SystemCollector
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings
from tests.instrumentation.conftest import Build, Host, add, key, points


def test_uptime_from_fixture(numa_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "system", SystemCollector)
    assert points(pipe.tick().data)[key("system.uptime")] == 350735.47


def test_live_uptime_agrees_with_psutil_boot_time(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "system", SystemCollector)
    uptime = points(pipe.tick().data)[key("system.uptime")]
    assert uptime == pytest.approx(time.time() - psutil.boot_time(), abs=5)


@given(st.text())
def test_parse_uptime_never_raises(text: str) -> None:
    value = parse_uptime(text)
    assert value is None or value >= 0


def test_unreadable_source_makes_the_family_unavailable(
    numa_host: Host, make_settings: Callable[..., Settings]
) -> None:
    if os.geteuid() == 0:
        # root reads a mode-000 file anyway: a missing file stands in for the same path.
        (numa_host.procfs / "uptime").unlink()
        match = "does not exist"
    else:
        (numa_host.procfs / "uptime").chmod(0)
        match = "not readable"
    settings = make_settings(procfs=numa_host.procfs, sysfs=numa_host.sysfs)
    with pytest.raises(CollectorUnavailableError, match=match):
        SystemCollector(CollectorContext("system", settings))
