"""`otel-sysops run` with OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta, to a real OTLP receiver."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from oteltest.sink import GrpcSink

from tests.conftest import free_port

from .test_run_otlp_prometheus import Recorder

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    sink = GrpcSink(recorder, logging.getLogger("oteltest"), port=port)
    sink.start()
    yield recorder, port
    sink.stop()


def _sums(recorder: Recorder) -> Iterator[tuple[str, int, bool]]:
    with recorder.lock:
        requests = list(recorder.requests)
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.WhichOneof("data") == "sum":
                        yield metric.name, metric.sum.aggregation_temporality, metric.sum.is_monotonic


def test_run_exports_monotonic_sums_as_deltas(receiver: tuple[Recorder, int]) -> None:
    recorder, otlp_port = receiver
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        {
            "SYSOPS_INTERVAL": "0.5",
            "SYSOPS_PROMETHEUS__PORT": str(free_port()),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(name == "system.cpu.time" for name, _, _ in _sums(recorder)):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "no system.cpu.time delta exported"
            time.sleep(0.1)
        sums = set(_sums(recorder))
        monotonic = {t for _, t, m in sums if m}
        assert monotonic == {AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA}
        # Up-down counters (non-monotonic sums) stay cumulative, as the specification's table says.
        assert {t for _, t, m in sums if not m} <= {AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
