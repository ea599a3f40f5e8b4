"""System uptime from /proc/uptime."""

from __future__ import annotations

import time

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.oneline import parse_uptime
from instrumentation.system import SystemCollector
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
