"""`otel-sysops run` as users run it: OTLP to a real receiver (oteltest's gRPC sink) and /metrics.

For one tick, the OTLP export and the Prometheus scrape must carry the same metrics and values.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.prometheus._mapping import sanitize_attribute, sanitize_full_name
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from oteltest.sink import GrpcSink
from oteltest.sink.handler import RequestHandler

from tests.conftest import free_port

pytestmark = pytest.mark.slow

Series = dict[tuple[tuple[str, str], ...], float]


class Recorder(RequestHandler):  # type: ignore[misc]  # oteltest has no type information
    """Keep every metrics export request the sink receives."""

    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.lock = threading.Lock()

    def handle_metrics(self, request: ExportMetricsServiceRequest, headers: Any) -> None:
        with self.lock:
            self.requests.append(request)

    def handle_logs(self, request: Any, headers: Any) -> None:
        return None

    def handle_trace(self, request: Any, headers: Any) -> None:
        return None


def _attr_value(value: Any) -> str:
    kind = value.WhichOneof("value")
    raw = getattr(value, kind)
    return str(raw).lower() if kind == "bool_value" else str(raw)


def otlp_series(request: ExportMetricsServiceRequest) -> dict[str, Series]:
    """Return metric name -> {sorted (label, value) -> number} for one export."""
    out: dict[str, Series] = {}
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                kind = metric.WhichOneof("data")
                if kind not in ("gauge", "sum"):
                    continue
                series = out.setdefault(metric.name, {})
                for point in getattr(metric, kind).data_points:
                    labels = tuple(
                        sorted((sanitize_attribute(a.key), _attr_value(a.value)) for a in point.attributes)
                    )
                    number = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                    series[labels] = float(number)
    return out


def prometheus_series(text: str) -> dict[str, Series]:
    """Return family sample name -> {sorted labels -> value} for an exposition (text format)."""
    out: dict[str, Series] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        assert match, line
        labels = tuple(
            sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        )
        out.setdefault(match.group(1), {})[labels] = float(match.group(3))
    return out


def matches(otlp: dict[str, Series], prom: dict[str, Series]) -> list[str]:
    """Return the differences: each OTLP metric must appear in the scrape with the same labels and values."""
    problems = []
    for name, series in otlp.items():
        base = sanitize_full_name(name)
        families = [fam for fam in prom if fam == base or fam.startswith(base + "_")]
        if not any(prom[fam] == series for fam in families):
            problems.append(
                f"{name}: otlp={sorted(series.items())[:3]} prom={[prom[f] for f in families][:1]}"
            )
    return problems


def get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode()
    except OSError:
        return 0, ""


@pytest.fixture
def otlp_sink() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = free_port()
    sink = GrpcSink(recorder, logging.getLogger("oteltest"), port=port)
    sink.start()
    yield recorder, port
    sink.stop()


def test_run_exports_the_same_tick_over_otlp_and_prometheus(otlp_sink: tuple[Recorder, int]) -> None:
    recorder, otlp_port = otlp_sink
    prom_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        {
            "SYSOPS_INTERVAL": "1",
            "SYSOPS_PROMETHEUS__PORT": str(prom_port),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{prom_port}"
        deadline = time.monotonic() + 30
        while get(base + "/readyz")[0] != 200:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "agent never became ready"
            time.sleep(0.1)
        # Scrape until one scrape equals one OTLP export exactly (a tick may land between the two).
        problems: list[str] = []
        for _ in range(40):
            status, text = get(base + "/metrics")
            assert status == 200
            prom = prometheus_series(text)
            with recorder.lock:
                exports = [otlp_series(r) for r in recorder.requests[-4:]]
            candidates = [matches(e, prom) for e in exports if "system.cpu.time" in e]
            if any(not c for c in candidates):
                break
            problems = min(candidates, key=len) if candidates else ["no OTLP export yet"]
            time.sleep(0.3)
        else:
            pytest.fail("no OTLP export equals a scrape: " + "; ".join(problems[:5]))
        assert "system.cpu.time" in exports[-1]
        assert "system.memory.usage" in exports[-1]
        resource = {
            a.key: _attr_value(a.value) for a in recorder.requests[-1].resource_metrics[0].resource.attributes
        }
        assert resource["service.name"] == "otel-sysops"
        assert resource["deployment.environment.name"] == "e2e"
        assert status == 200
        assert 'deployment_environment_name="e2e"' in get(base + "/metrics")[1]
        assert get(base + "/healthz")[0] == 200
        # SIGTERM: stop collecting, flush, exit 0.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
