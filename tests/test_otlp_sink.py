"""The OTLP sink: export off the tick thread, bounded retry, bounded buffer, every loss counted."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData, ResourceMetrics
from opentelemetry.sdk.resources import Resource

from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import OtlpSettings, Settings
from otel_sysops.sinks._otlp import OtlpSink, make_exporter, otlp_enabled, otlp_protocol


class GatedExporter:
    """An exporter that blocks until released, then answers with the scripted results."""

    def __init__(self, results: list[MetricExportResult] | None = None) -> None:
        self.gate = threading.Event()
        self.results = list(results or [])
        self.exported: list[MetricsData] = []
        self.attempts = 0
        self.idle = threading.Event()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.gate.wait(10)
        self.attempts += 1
        result = self.results.pop(0) if self.results else MetricExportResult.SUCCESS
        if result is MetricExportResult.SUCCESS:
            self.exported.append(metrics_data)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def data(n: int) -> MetricsData:
    """A collection of `n` empty resources (no points)."""
    return MetricsData(resource_metrics=[ResourceMetrics(Resource({}), [], "") for _ in range(max(n, 0))])


def test_consume_returns_while_the_endpoint_hangs_and_order_is_kept() -> None:
    exporter = GatedExporter()
    sink = OtlpSink(exporter, queue_size=10)
    batches = [data(i) for i in range(5)]
    for b in batches:
        sink.consume(b, 0.0)  # returns although the exporter is blocked
    assert sink.pending() >= 4
    exporter.gate.set()
    sink.close(5.0)
    assert exporter.exported == batches


def test_failed_exports_are_retried_then_succeed() -> None:
    exporter = GatedExporter([MetricExportResult.FAILURE, MetricExportResult.FAILURE])
    exporter.gate.set()
    sink = OtlpSink(exporter, max_attempts=5, backoff=0.01)
    batch = data(1)
    sink.consume(batch, 0.0)
    sink.close(5.0)
    assert exporter.exported == [batch]
    assert sink.failures() == 2
    assert sink.dropped == 0


def test_a_batch_failing_every_attempt_is_dropped_and_counted() -> None:
    exporter = GatedExporter([MetricExportResult.FAILURE] * 3)
    exporter.gate.set()
    sink = OtlpSink(exporter, max_attempts=3, backoff=0.01)
    sink.consume(data(1), 0.0)
    second = data(2)
    sink.consume(second, 0.0)
    sink.close(5.0)
    assert sink.failures() == 3
    assert sink.dropped == 1
    assert exporter.exported == [second]


def test_an_outage_is_logged_when_it_starts_and_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    # Three collections fail every attempt, then the endpoint comes back.
    exporter = GatedExporter([MetricExportResult.FAILURE] * 6)
    exporter.gate.set()
    sink = OtlpSink(exporter, max_attempts=2, backoff=0.01)
    with caplog.at_level(logging.DEBUG, logger="otel_sysops.sinks._otlp"):
        for i in range(4):
            sink.consume(data(i), 0.0)
        sink.close(5.0)
    assert sink.dropped == 3
    assert len(exporter.exported) == 1
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "otel_sysops.sinks._otlp"]
    warnings = [m for level, m in lines if level >= logging.WARNING]
    assert warnings == ["OTLP export failed 2 times; dropping collections until it recovers (1 so far)"]
    assert (
        logging.DEBUG,
        "OTLP export failed 2 times; dropping collections until it recovers (3 so far)",
    ) in lines
    assert (logging.INFO, "OTLP export recovered; 3 collections were dropped while it failed") in lines


def test_a_full_buffer_drops_the_oldest_and_counts_it() -> None:
    exporter = GatedExporter()
    sink = OtlpSink(exporter, queue_size=3)
    batches = [data(i) for i in range(10)]
    for b in batches:
        sink.consume(b, 0.0)
    exporter.gate.set()
    sink.close(5.0)
    # The worker held batch 0 when the rest arrived; of 1..9 only the newest three fit.
    assert exporter.exported[-3:] == batches[-3:]
    assert sink.dropped == 10 - len(exporter.exported)
    assert sink.dropped >= 6


class BlackHoleExporter:
    """An endpoint that never answers: each export waits out its timeout, then fails."""

    def __init__(self) -> None:
        self.timeouts: list[float] = []
        self.never = threading.Event()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.timeouts.append(timeout_millis)
        self.never.wait(timeout_millis / 1000)
        return MetricExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


def test_close_ends_the_worker_at_its_deadline_and_counts_what_is_left() -> None:
    exporter = BlackHoleExporter()
    sink = OtlpSink(exporter, queue_size=500, max_attempts=1, timeout_millis=100)
    for i in range(300):  # 30 s of exports at 0.1 s each
        sink.consume(data(i), 0.0)
    sink.close(0.5)
    sink._thread.join(10)  # wait on the thread itself: past the deadline it must have ended
    assert not sink._thread.is_alive(), "the export worker outlived its shutdown deadline"
    assert sink.pending() == 0
    assert sink.exported == 0
    assert sink.dropped == 300
    assert max(exporter.timeouts) <= 100


def test_real_exporter_against_a_dead_endpoint_never_stops_the_ticks(
    make_settings: Callable[..., Settings], monkeypatch: object
) -> None:
    import os

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"
    try:
        exporter = make_exporter("http/protobuf")
    finally:
        del os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"], os.environ["OTEL_EXPORTER_OTLP_TIMEOUT"]
    pipe = Pipeline(make_settings(), load=False)
    sink = OtlpSink(exporter, queue_size=5, max_attempts=2, backoff=0.01, timeout_millis=500)
    pipe.add_sink(sink)
    results = [pipe.tick() for _ in range(8)]
    assert len(results) == 8
    pipe.close(3.0)
    assert sink.exported == 0
    assert sink.failures() >= 1
    assert sink.dropped + sink.pending() >= 1


def test_otlp_is_on_when_an_endpoint_is_configured() -> None:
    assert not otlp_enabled(OtlpSettings(), {})
    assert otlp_enabled(OtlpSettings(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert otlp_enabled(OtlpSettings(), {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"})
    assert not otlp_enabled(OtlpSettings(enabled=False), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"})
    assert otlp_protocol(OtlpSettings(), {}) == "grpc"
    assert otlp_protocol(OtlpSettings(), {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == "http/protobuf"
    assert (
        otlp_protocol(OtlpSettings(protocol="grpc"), {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
        == "grpc"
    )


def _points_data(points: int) -> MetricsData:
    from opentelemetry.sdk.metrics.export import (
        Gauge,
        Metric,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    gauge = Gauge([NumberDataPoint({"i": i}, 0, 1, float(i)) for i in range(points)])
    scope = ScopeMetrics(InstrumentationScope("t"), [Metric("m", "", "1", gauge)], "")
    return MetricsData([ResourceMetrics(Resource({}), [scope], "")])


def test_the_backlog_is_bounded_in_points_and_drains_after_recovery() -> None:
    exporter = GatedExporter([MetricExportResult.FAILURE] * 1000)
    exporter.gate.set()
    sink = OtlpSink(exporter, queue_size=1000, max_attempts=1000, backoff=0.01, max_points=2500)
    for _ in range(10):
        sink.consume(_points_data(1000), 0.0)
        assert sink.pending_points() <= 2500
    assert sink.pending() == 2
    assert sink.dropped == 8
    exporter.results = []  # the endpoint comes back
    deadline = time.monotonic() + 60
    while sink.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.pending() == 0
    assert sink.pending_points() == 0
    sink.close(1.0)
