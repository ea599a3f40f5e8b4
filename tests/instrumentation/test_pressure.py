"""PSI: the psi-host fixture through the real pipeline, exact values; unavailable without PSI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.pressure import parse_pressure
from instrumentation.pressure import PressureCollector
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import Settings
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

RES, KIND, WIN = "sysops.pressure.resource", "sysops.pressure.kind", "sysops.pressure.window"


def test_ratios_and_stall_time_per_resource(psi_host: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(psi_host)
    add(pipe, settings, "pressure", PressureCollector)
    values = points(pipe.tick().data)
    ratio = of(values, "sysops.pressure.stall.ratio")
    # cpu, memory, io; some and full; three windows each (irq is absent on this host).
    assert len(ratio) == 3 * 2 * 3
    assert values[key("sysops.pressure.stall.ratio", **{RES: "cpu", KIND: "some", WIN: "10s"})] == 0.125
    assert values[key("sysops.pressure.stall.ratio", **{RES: "io", KIND: "full", WIN: "300s"})] == 0.1225
    assert values[key("sysops.pressure.stall.ratio", **{RES: "memory", KIND: "some", WIN: "60s"})] == 0.005
    # total= is in microseconds.
    assert of(values, "sysops.pressure.stall.time") == {
        frozenset({(RES, "cpu"), (KIND, "some")}): 4567.890123,
        frozenset({(RES, "cpu"), (KIND, "full")}): 0.0,
        frozenset({(RES, "memory"), (KIND, "some")}): 98.765432,
        frozenset({(RES, "memory"), (KIND, "full")}): 54.321,
        frozenset({(RES, "io"), (KIND, "some")}): 3000.0,
        frozenset({(RES, "io"), (KIND, "full")}): 2500.0,
    }
    assert errors(pipe, "pressure") == {}


def test_no_psi_is_unavailable(numa_host: Host, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(procfs=numa_host.procfs, sysfs=numa_host.sysfs)
    with pytest.raises(CollectorUnavailableError, match="PSI"):
        PressureCollector(CollectorContext("pressure", settings))


def test_live_pressure_if_the_kernel_has_it(pipeline_for: Build) -> None:
    if not Path("/proc/pressure/cpu").exists():
        pytest.skip("this kernel has no PSI")
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "pressure", PressureCollector)
    values = points(pipe.tick().data)
    some = values[key("sysops.pressure.stall.time", **{RES: "cpu", KIND: "some"})]
    assert some > 0
    assert all(0 <= v <= 1 for v in of(values, "sysops.pressure.stall.ratio").values())


def test_malformed_and_unsupported_files(psi_host: Host, pipeline_for: Build) -> None:
    path = psi_host.procfs / "pressure" / "memory"
    path.write_text(
        "some avg10=1.20 avg60=0.50 total=98765432\nfull avg10=0.80 avg60=0.30 avg300=0.05 total=54321000\n"
    )
    pipe, settings = pipeline_for(psi_host)
    add(pipe, settings, "pressure", PressureCollector)
    values = points(pipe.tick().data)
    assert key("sysops.pressure.stall.time", **{RES: "memory", KIND: "full"}) in values
    assert key("sysops.pressure.stall.time", **{RES: "memory", KIND: "some"}) not in values
    assert errors(pipe, "pressure") == {"malformed_line": 1}


@given(st.text(), st.integers(min_value=0, max_value=200))
def test_parse_pressure_never_raises_even_truncated(text: str, cut: int) -> None:
    parse_pressure(text)
    real = (
        "some avg10=12.50 avg60=8.25 avg300=3.10 total=4567890123\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    out = parse_pressure(real[: cut % (len(real) + 1)])
    assert all(0 <= v <= 100 for line in out.lines.values() for v in line.averages.values())
