"""Trend forecasts and leak detection through the real pipeline, and the regression underneath."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analyzers.leak import LeakAnalyzer
from analyzers.regression import fit_lines, time_to_reach
from analyzers.trend import FORECAST_METRIC, TrendAnalyzer
from otel_sysops.alerts import Finding, Severity
from tests.points import number_points

from .conftest import Rig, Series

FS = "system.filesystem.utilization"
LIMIT = "system.filesystem.limit"
RSS = "process.memory.usage"
FDS = "process.unix.file_descriptor.count"
VAR = (
    ("system.device", "sda2"),
    ("system.filesystem.mountpoint", "/var"),
    ("system.filesystem.state", "used"),
)
VAR_LIMIT = (("system.device", "sda2"), ("system.filesystem.mountpoint", "/var"))


def test_filling_filesystem_warns_then_goes_critical_with_an_actionable_message(
    rig: Callable[..., Rig],
) -> None:
    # 60 s ticks, so the raw window (1 h) holds 60 points.
    r = rig([FS, LIMIT], interval=60.0)
    r.add("trend", TrendAnalyzer)
    rng = np.random.default_rng(1)
    size = 100e9
    # 60 s ticks: /var at 50 % filling 5 %/h -> full in 10 h (warning); later 40 %/h -> critical.
    found: list[tuple[int, Finding]] = []
    util = 0.5
    for i in range(140):
        util += (0.05 if i < 90 else 0.40) / 60 + rng.normal(0, 0.0005)
        found.extend((i, f) for f in r.tick({FS: {VAR: util}, LIMIT: {VAR_LIMIT: size}}))
    severities = [f.severity for _, f in found]
    assert severities[:2] == [Severity.WARNING, Severity.CRITICAL]
    first = found[0]
    # The fit needs 15 min of data before it forecasts anything.
    assert first[0] >= 14
    msg = first[1].message
    assert msg.startswith("/var will be full in ")
    assert re.fullmatch(
        r"/var will be full in 9 h \d+ min at 5\.\d GB/h, R² (0\.9\d|1\.00) \(now 5\d %\)", msg
    ), msg
    assert 4 * 3600 < (first[1].threshold or 0) < 12 * 3600
    # The forecast is exported per series, in seconds.
    assert r.pipe.last_result is not None
    exported = [p for m, p in number_points(r.pipe.last_result.data) if m.name == FORECAST_METRIC]
    assert len(exported) == 1
    assert (exported[0].attributes or {})["sysops.metric"] == FS
    assert 0 < exported[0].value < 3600


def test_trend_clears_when_the_filesystem_is_cleaned_up(rig: Callable[..., Rig]) -> None:
    r = rig([FS], store={"raw_window": 1800.0, "max_series": 100})
    r.add("trend", TrendAnalyzer)
    util = 0.5
    events = []
    for i in range(120):
        util = util + 0.6 / 60 if i < 40 else 0.2
        events += [(i, f.severity) for f in r.tick({FS: {VAR: util}}, step=60.0)]
    assert events[0][1] == Severity.CRITICAL
    assert events[-1][1] is None


def test_noise_does_not_forecast(rig: Callable[..., Rig]) -> None:
    r = rig([FS])
    r.add("trend", TrendAnalyzer)
    rng = np.random.default_rng(5)
    events = [f for i in range(200) for f in r.tick({FS: {VAR: 0.6 + rng.normal(0, 0.05)}}, step=30.0)]
    assert events == []


def test_memory_leak_needs_thirty_minutes_of_steady_growth(rig: Callable[..., Rig]) -> None:
    r = rig([RSS, FDS])
    r.add("leak", LeakAnalyzer)
    leaky = (("process.executable.name", "java"), ("process.pid", "4242"))
    steady = (("process.executable.name", "nginx"), ("process.pid", "17"))
    rng = np.random.default_rng(2)
    events: list[tuple[int, Finding]] = []
    for i in range(420):  # 10 s ticks, 70 min
        rss = 400e6 + i * 10 * (300e6 / 3600) + rng.normal(0, 2e6)  # +300 MB/h
        calm = 80e6 + rng.normal(0, 2e6)
        fds: Series = {leaky: 100.0 + i // 30, steady: 40.0}
        events.extend((i, f) for f in r.tick({RSS: {leaky: rss, steady: calm}, FDS: fds}))
    rss_events = [(i, f) for i, f in events if f.metric == RSS]
    assert [(f.severity, f.attributes["process.pid"]) for _, f in rss_events] == [(Severity.WARNING, "4242")]
    first, finding = rss_events[0]
    assert first >= 180  # 30 min of data at least
    assert "java (pid 4242)" in finding.message
    assert "MB/h" in finding.message
    # 100 -> 113 descriptors is below the 32-descriptor floor: not a leak.
    assert [f for _, f in events if f.metric == FDS] == []


def test_leak_clears_when_growth_stops_and_when_the_process_exits(rig: Callable[..., Rig]) -> None:
    r = rig([RSS], store={"raw_window": 2400.0, "max_series": 100, "evict_after": 120.0})
    r.add("leak", LeakAnalyzer)
    proc = (("process.executable.name", "app"), ("process.pid", "9"))
    events = []
    for i in range(300):
        events += [(i, f.severity) for f in r.tick({RSS: {proc: 100e6 + i * 1e6}}, step=10.0)]
    assert events
    assert events[0][1] == Severity.WARNING
    for _ in range(30):
        events += [(0, f.severity) for f in r.tick({RSS: {}}, step=10.0)]
    assert events[-1][1] is None
    assert len(events) == 2


def test_fit_is_exact_on_a_line_and_safe_on_bad_input() -> None:
    t = np.arange(100.0) * 10
    values = np.vstack(
        [2.0 + 0.01 * t, np.full(100, 3.0), np.full(100, np.nan), np.where(t > 500, np.inf, 1.0)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_lines(t, values)
        eta = time_to_reach(fit, 12.0)
    assert np.isclose(fit.slope[0], 0.01)
    assert np.isclose(fit.r2[0], 1.0)
    assert np.isclose(eta[0], (12.0 - (2.0 + 0.01 * 990)) / 0.01)
    assert fit.slope[1] == 0
    assert fit.r2[1] == 0
    assert np.isinf(eta[1])
    assert np.isnan(fit.slope[2])
    assert np.isnan(eta[2])
    assert fit.slope[3] == 0


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(0, 50)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=32),
    )
)
def test_fit_never_warns(values: np.ndarray) -> None:
    t = np.arange(values.shape[1], dtype=np.float64) * 10
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_lines(t, values)
        time_to_reach(fit, 1.0)
    ok = np.isfinite(fit.r2)
    assert np.all((fit.r2[ok] >= 0) & (fit.r2[ok] <= 1))
