"""The host incident score and its finding through the real pipeline (anomaly + correlation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from analyzers.anomaly import AnomalyAnalyzer
from analyzers.correlation import HOST_METRIC, RULE, CorrelationAnalyzer
from otel_sysops.alerts import Finding, Severity
from tests.points import number_points

from .conftest import Rig, Series

CPU, LOAD, DISK, SWAP = "test.cpu", "test.load", "test.disk.io", "test.swap.in"


def _host(r: Rig) -> list[float]:
    assert r.pipe.last_result is not None
    return [float(p.value) for m, p in number_points(r.pipe.last_result.data) if m.name == HOST_METRIC]


def _run(
    r: Rig, rows: int, moved: Callable[[int], bool], blip: Callable[[int], bool]
) -> list[tuple[int, Finding]]:
    rng = np.random.default_rng(17)
    events: list[tuple[int, Finding]] = []
    for i in range(rows):
        shift = 0.5 if moved(i) else 0.0
        values: dict[str, Series] = {
            CPU: {(): 0.3 + rng.normal(0, 0.02) + shift},
            LOAD: {(): 2.0 + rng.normal(0, 0.1) + 4 * shift},
            DISK: {(("device", "sda"),): 0.1 + rng.normal(0, 0.01) + shift},
            SWAP: {(): 1.0 if blip(i) else 0.0},
        }
        events += [(i, f) for f in r.tick(values) if f.rule == RULE]
    return events


def test_series_moving_together_raise_one_host_finding_naming_them(rig: Callable[..., Rig]) -> None:
    r = rig([CPU, LOAD, DISK, SWAP], interval=60.0)
    r.add("anomaly", AnomalyAnalyzer)
    r.add("correlation", CorrelationAnalyzer)
    events = _run(r, 900, lambda i: 600 <= i < 620, lambda i: False)
    opened = [(i, f) for i, f in events if f.severity is not None]
    assert len(opened) == 1
    at, finding = opened[0]
    assert 600 <= at <= 605
    assert finding.severity == Severity.WARNING
    named = set(finding.attributes.values())
    assert {"test.cpu", "test.load", "test.disk.io{device=sda}"} <= named
    assert "moved together" in finding.message
    # It clears once the host is quiet again, and nothing else opens.
    assert [f.severity for _, f in events] == [Severity.WARNING, None]
    assert _host(r)
    assert 0 <= _host(r)[0] <= 1


def test_a_flat_series_that_blips_once_stays_quiet(rig: Callable[..., Rig]) -> None:
    r = rig([CPU, LOAD, DISK, SWAP], interval=60.0)
    r.add("anomaly", AnomalyAnalyzer)
    r.add("correlation", CorrelationAnalyzer)
    events = _run(r, 700, lambda i: False, lambda i: i in (100, 650))
    assert events == []


def test_a_daily_job_at_a_fixed_minute_stays_quiet_after_two_days(rig: Callable[..., Rig]) -> None:
    # Every night at 02:00 a backup drives CPU and disk I/O up for 30 min; at 10 min a tick.
    r = rig([CPU, DISK], interval=600.0)
    r.add("anomaly", AnomalyAnalyzer)
    r.add("correlation", CorrelationAnalyzer)
    r.now = 1_700_006_400.0  # midnight UTC
    rng = np.random.default_rng(23)
    day = 144
    events: list[tuple[int, Finding]] = []
    for i in range(6 * day):
        job = 12 <= i % day < 15
        values: dict[str, Series] = {
            CPU: {(): 0.2 + rng.normal(0, 0.01) + (0.6 if job else 0.0)},
            DISK: {(("device", "sda"),): 0.05 + rng.normal(0, 0.005) + (0.8 if job else 0.0)},
        }
        events += [(i, f) for f in r.tick(values)]
    assert [(i, f.rule) for i, f in events if i >= 2 * day] == []


def test_cpu_load_and_disk_moving_together_inside_their_ranges_raise_one_finding(
    rig: Callable[..., Rig],
) -> None:
    # A busy spell during warm-up sets wide ranges; a day later CPU, load and disk I/O rise together for
    # 20 min to levels well inside those ranges: no series breaks its range, the host moved.
    r = rig([CPU, LOAD, DISK], interval=60.0)
    r.add("anomaly", AnomalyAnalyzer)
    r.add("correlation", CorrelationAnalyzer)
    rng = np.random.default_rng(29)
    events: list[tuple[int, Finding]] = []
    for i in range(2100):
        busy = 100 <= i < 110
        moved = 2000 <= i < 2020
        level = 0.6 if busy else 0.3 if moved else 0.0
        values: dict[str, Series] = {
            CPU: {(): 0.3 + rng.normal(0, 0.02) + level},
            LOAD: {(): 2.0 + rng.normal(0, 0.1) + 5 * level},
            DISK: {(("device", "sda"),): 0.1 + rng.normal(0, 0.01) + level},
        }
        events += [(i, f) for f in r.tick(values) if f.rule == RULE and f.severity is not None]
    assert [i for i, _ in events if i < 2000] == []
    assert len(events) == 1
    at, finding = events[0]
    assert 2000 <= at <= 2005
    assert {"test.cpu", "test.load", "test.disk.io{device=sda}"} == set(finding.attributes.values())
