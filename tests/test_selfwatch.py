"""The self-watch: over budget for a while -> a finding and work shed in order; back under -> restored."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import pytest
from opentelemetry.metrics import Meter

from otel_sysops.alerts import Finding
from otel_sysops.churn import ChurningMeter
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Analyzer, AnalyzerContext, Collector, CollectorContext
from otel_sysops.selfwatch import SelfWatch, Usage
from otel_sysops.settings import Settings


class Recorder:
    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def submit(self, finding: Finding) -> None:
        self.findings.append(finding)


class CountingCollector(Collector[None]):
    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.samples = 0

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        return None

    def sample(self, now: float) -> None:
        self.samples += 1


class SheddingAnalyzer(Analyzer):
    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.runs = 0
        self.levels: list[int] = []

    def analyze(self, now: float) -> Iterable[Finding]:
        self.runs += 1
        return []

    def shed(self, level: int) -> None:
        self.levels.append(level)


def test_over_budget_for_a_while_alerts_sheds_in_order_and_restores(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(budget={"rss_max_mb": 50, "for_seconds": 30})
    alerts = Recorder()
    pipe = Pipeline(settings, load=False, alert_sink=alerts)
    process = CountingCollector(CollectorContext("process", settings, pipe.files, pipe.errors))
    pipe.add_collector("process", process)
    anomaly = SheddingAnalyzer(AnalyzerContext("anomaly", settings, pipe.store))
    pipe.add_analyzer("anomaly", anomaly)
    usage = {"now": Usage(rss_mb=40, cpu_percent=1, fds=10)}
    t = 1_700_000_000.0
    # The watch measures real elapsed time; here the clock follows the injected tick times.
    pipe.watch = SelfWatch(settings.budget, alerts, usage=lambda: usage["now"], clock=lambda: t)

    def ticks(n: int) -> None:
        nonlocal t
        for _ in range(n):
            pipe.tick(timestamp=t)
            t += 10

    try:
        ticks(3)
        assert alerts.findings == []
        assert pipe.watch.level == 0
        usage["now"] = Usage(rss_mb=80, cpu_percent=1, fds=10)
        with caplog.at_level(logging.WARNING, logger="otel_sysops.selfwatch"):
            ticks(3)  # over for 0, 10, 20 s: not yet "a while"
            assert pipe.watch.level == 0
            ticks(1)  # 30 s over: step 1, per-series exports, and a finding
            assert pipe.watch.level == 1
            assert anomaly.levels == [1]
            assert alerts.findings[-1].firing
            assert "RSS 80 MB > 50 MB" in alerts.findings[-1].message
            ticks(3)  # still over 30 s later: step 2, the process scan slows down
            assert pipe.watch.level == 2
            before = process.samples
            ticks(3)  # step 3: the anomaly step slows down too
            assert pipe.watch.level == 3
            assert process.samples - before < 3
            runs = anomaly.runs
            ticks(8)
            assert anomaly.runs - runs <= 3  # every 4th tick
            assert pipe.watch.level == 3  # nothing left to shed: stays, still alerting
            usage["now"] = Usage(rss_mb=30, cpu_percent=1, fds=10)
            ticks(4)  # under for 30 s: the last step is reversed first
            assert pipe.watch.level == 2
            ticks(8)
            assert pipe.watch.level == 0
            assert anomaly.levels == [1, 0]
        assert not alerts.findings[-1].firing  # cleared once nothing is shed
        logged = [r.getMessage() for r in caplog.records]
        assert sum("shedding step" in m for m in logged) == 3
        assert sum("restoring step" in m for m in logged) == 3
        process_before, runs_before = process.samples, anomaly.runs
        ticks(4)
        assert process.samples - process_before == 4  # full cadence again
        assert anomaly.runs - runs_before == 4
    finally:
        pipe.close(1.0)


def test_the_real_usage_is_read_from_proc(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    watch = SelfWatch(settings.budget, Recorder())
    pipe = Pipeline(settings, load=False)
    first = watch.check(pipe, settings.procfs)
    pipe.close(1.0)
    assert first.rss_mb > 1
    assert first.fds >= 3


def test_usage_reads_the_resident_size_status_reports() -> None:
    from pathlib import Path

    from otel_sysops.selfwatch import read_usage

    status = Path("/proc/self/status").read_text()
    vm_rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    usage = read_usage(Path("/proc"), 0.0, 1.0, None)
    assert abs(usage.rss_mb - vm_rss / 1024) < 2.0  # live: a page or two may come and go
