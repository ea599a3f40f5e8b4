"""CPU cost of one tick: ours (collect once, fan out to store + OTLP + Prometheus) against the stock
OpenTelemetry Python setup (opentelemetry-instrumentation-system-metrics with two readers, OTLP and
Prometheus, each running every callback itself).

Both export over OTLP/gRPC to a local receiver (oteltest's sink) and render a Prometheus scrape per
tick. CPU is process CPU (all threads) per tick. Usage: python benchmarks/tick.py [--ticks 50]
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import time
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from oteltest.sink import GrpcSink
from oteltest.sink.handler import RequestHandler


class Count(RequestHandler):  # type: ignore[misc]  # oteltest has no type information
    def __init__(self) -> None:
        self.n = 0

    def handle_metrics(self, request: Any, headers: Any) -> None:
        self.n += 1

    def handle_logs(self, request: Any, headers: Any) -> None:
        return None

    def handle_trace(self, request: Any, headers: Any) -> None:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(handler: Count, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while handler.n < n and time.monotonic() < deadline:
        time.sleep(0.001)


def bench_ours(endpoint: str, handler: Count, ticks: int) -> tuple[float, dict[str, float], int]:
    from otel_sysops.pipeline import Pipeline, iter_points
    from otel_sysops.settings import load_settings
    from otel_sysops.sinks import PrometheusSink
    from otel_sysops.sinks._otlp import OtlpSink

    settings = load_settings(None, {"prometheus": {"enabled": False}}, environ={})
    pipe = Pipeline(settings)
    prom = PrometheusSink()
    pipe.add_sink(OtlpSink(OTLPMetricExporter(endpoint=endpoint, insecure=True)))
    pipe.add_sink(prom)
    pipe.tick()
    wait_for(handler, 1)
    phases = {"sample": 0.0, "scrape (cached)": 0.0}
    handler.n = 0
    start = time.process_time()
    for _ in range(ticks):
        t0 = time.process_time()
        pipe.sample()
        phases["sample"] += time.process_time() - t0
        pipe.tick()
        t0 = time.process_time()
        prom.render()
        phases["scrape (cached)"] += time.process_time() - t0
    wait_for(handler, ticks)
    cpu = time.process_time() - start
    # pipe.sample() above is an extra sample per tick, measured on its own: subtract it.
    cpu -= phases["sample"]
    series = sum(1 for _ in iter_points(pipe.last_result.data)) if pipe.last_result else 0
    pipe.close(5)
    return cpu / ticks, {k: v / ticks for k, v in phases.items()}, series


def bench_stock(endpoint: str, handler: Count, ticks: int) -> tuple[float, int]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    prom = PrometheusMetricReader(registry=registry)
    otlp = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=endpoint, insecure=True), export_interval_millis=10**9
    )
    provider = MeterProvider(metric_readers=[otlp, prom])
    instrumentor = SystemMetricsInstrumentor()
    instrumentor.instrument(meter_provider=provider)
    otlp.collect()
    wait_for(handler, 1)
    handler.n = 0
    start = time.process_time()
    text = b""
    for _ in range(ticks):
        otlp.collect()  # what the periodic reader does each interval
        text = generate_latest(registry)  # what a Prometheus scrape does
    wait_for(handler, ticks)
    cpu = time.process_time() - start
    series = sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))
    instrumentor.uninstrument()
    provider.shutdown()
    return cpu / ticks, series


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=50)
    args = parser.parse_args()
    logging.getLogger("oteltest").setLevel(logging.WARNING)
    handler = Count()
    port = free_port()
    sink = GrpcSink(handler, logging.getLogger("oteltest"), port=port)
    sink.start()
    endpoint = f"127.0.0.1:{port}"
    ours, phases, ours_series = bench_ours(endpoint, handler, args.ticks)
    stock, stock_series = bench_stock(endpoint, handler, args.ticks)
    sink.stop()
    print(
        "one tick = collect + OTLP export + one Prometheus scrape; "
        f"{args.ticks} ticks; {os.cpu_count()} cores"
    )
    print(f"{'':44s} {'CPU ms/tick':>12s} {'series':>7s} {'µs/series':>10s}")
    print(
        f"{'otel-sysops (one collection, fanned out)':44s} {ours * 1e3:12.2f} {ours_series:7d} "
        f"{ours * 1e6 / max(ours_series, 1):10.1f}"
    )
    print(
        f"{'stock OTel Python (system-metrics, 2 readers)':44s} {stock * 1e3:12.2f} {stock_series:7d} "
        f"{stock * 1e6 / max(stock_series, 1):10.1f}"
    )
    print(
        f"ratio ours/stock: CPU per tick {ours / stock:.2f}, CPU per series "
        f"{(ours / max(ours_series, 1)) / (stock / max(stock_series, 1)):.2f}"
    )
    for name, value in phases.items():
        print(f"  ours, {name}: {value * 1e3:.3f} ms")
    print(f"  at a 10 s interval ours is {ours / 10 * 100:.3f} % of one core")


if __name__ == "__main__":
    main()
