"""Where one default tick's CPU goes, stage by stage, with node_exporter's CPU per scrape in the same run.

Runs the default configuration (every installed collector and analyzer, the ring store, an OTLP
sink exporting to a local receiver, the Prometheus sink) and times each stage of `Pipeline.tick`
with the tick thread's CPU clock (`time.thread_time`): every collector's `collect`, the SDK
collection, the observable callbacks (`_with_churn`), every sink's `consume`, every analyzer, the
self-watch. Ticks and node_exporter scrapes are interleaved round by round; medians over the
rounds. The OTLP sink's export runs on its own thread: its CPU is reported apart (process CPU
minus tick thread CPU, per tick).

Usage: python benchmarks/tick_stages.py [--ticks 30] [--scrapes 5] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HZ = os.sysconf("SC_CLK_TCK")
NODE = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as r:
        return bytes(r.read())


def start_node() -> tuple[subprocess.Popen[bytes], str]:
    assert NODE is not None, "install prometheus-node-exporter"
    port = free_port()
    proc = subprocess.Popen(
        [NODE, f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 15
    while True:
        try:
            get(url)
            return proc, url
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Stages:
    """Accumulate thread CPU per stage name for the current tick."""

    def __init__(self) -> None:
        self.tick: dict[str, float] = defaultdict(float)
        self.rounds: dict[str, list[float]] = defaultdict(list)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.tick[name] += time.thread_time() - start

        return timed

    def end_tick(self) -> None:
        for name, value in self.tick.items():
            self.rounds[name].append(value)
        self.tick.clear()


def tune_like_run() -> str:
    """Tune the process as `otel-sysops run` does (older versions had nothing to tune)."""
    import gc
    import importlib

    tune = getattr(importlib.import_module("otel_sysops._memory"), "tune_gc", None)
    if callable(tune):
        tune()
    return f"gc thresholds {gc.get_threshold()}"


def build(stages: Stages, endpoint: str | None) -> Any:
    from otel_sysops.pipeline import Pipeline
    from otel_sysops.settings import load_settings
    from otel_sysops.sinks import PrometheusSink

    pipe = Pipeline(load_settings(None, {"prometheus": {"enabled": False}}, environ={}))
    if endpoint is not None:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        from otel_sysops.sinks._otlp import OtlpSink

        pipe.add_sink(OtlpSink(OTLPMetricExporter(endpoint=endpoint, insecure=True)))
    pipe.add_sink(PrometheusSink())
    for name, collector in pipe.collectors.items():
        collector.collect = stages.wrap(f"collector {name}", collector.collect)  # type: ignore[method-assign]
    for name, analyzer in pipe.analyzers.items():
        analyzer.analyze = stages.wrap(f"analyzer {name}", analyzer.analyze)  # type: ignore[method-assign]
    for sink in pipe.sinks:
        sink.consume = stages.wrap(f"sink {sink.name}", sink.consume)  # type: ignore[method-assign]
    pipe.reader.collect_once = stages.wrap("sdk collection", pipe.reader.collect_once)  # type: ignore[method-assign]
    pipe._with_churn = stages.wrap("observable callbacks", pipe._with_churn)  # type: ignore[method-assign]
    pipe.watch.check = stages.wrap("self-watch", pipe.watch.check)  # type: ignore[method-assign]
    pipe.tick = stages.wrap("tick (total)", pipe.tick)  # type: ignore[method-assign]
    return pipe


def otlp_receiver() -> tuple[Any, str]:
    from oteltest.sink import GrpcSink
    from oteltest.sink.handler import RequestHandler

    class Ignore(RequestHandler):  # type: ignore[misc]  # oteltest has no type information
        def handle_metrics(self, request: Any, headers: Any) -> None:
            return None

        def handle_logs(self, request: Any, headers: Any) -> None:
            return None

        def handle_trace(self, request: Any, headers: Any) -> None:
            return None

    logging.getLogger("oteltest").setLevel(logging.WARNING)
    port = free_port()
    sink = GrpcSink(Ignore(), logging.getLogger("oteltest"), port=port)
    sink.start()
    return sink, f"127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--scrapes", type=int, default=5, help="node_exporter scrapes per round")
    parser.add_argument("--no-otlp", action="store_true", help="leave the OTLP sink out")
    parser.add_argument("--profile", help="write a cProfile of the timed ticks to this file")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    receiver, endpoint = (None, None) if args.no_otlp else otlp_receiver()
    stages = Stages()
    tuned = tune_like_run()
    pipe = build(stages, endpoint)
    node, node_url = start_node()
    process: list[float] = []
    node_ms: list[float] = []
    profile = cProfile.Profile(time.thread_time) if args.profile else None  # this thread only
    points = 0
    try:
        for _ in range(3):
            pipe.tick()
            time.sleep(0.3)
        stages.rounds.clear()
        stages.tick.clear()
        for _ in range(args.ticks):
            before = time.process_time()
            if profile is not None:
                profile.enable()
            result = pipe.tick()
            if profile is not None:
                profile.disable()
            time.sleep(0.05)  # let the OTLP worker export this tick before the next round
            process.append(time.process_time() - before)
            stages.end_tick()
            points = sum(
                len(m.data.data_points)
                for rm in result.data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            )
            node_before = cpu_seconds(node.pid)
            for _ in range(args.scrapes):  # /proc's CPU clock is 10 ms coarse: several scrapes per round
                get(node_url)
            node_ms.append((cpu_seconds(node.pid) - node_before) / args.scrapes * 1000)
            time.sleep(0.2)
    finally:
        node.terminate()
        node.wait(10)
        pipe.close(2.0)
        if receiver is not None:
            receiver.stop()
    if profile is not None:
        profile.dump_stats(args.profile)

    def med(values: list[float]) -> float:
        return statistics.median(values) * 1000

    tick = med(stages.rounds.pop("tick (total)"))
    # node_exporter's CPU clock ticks every 10 ms: a round's figure is coarse; take the mean.
    node_cpu = statistics.mean(node_ms)
    print(
        f"{os.cpu_count()} cores, load {load:.2f} at start (shared machine), "
        f"Python {sys.version.split()[0]}, {args.ticks} ticks, {points} points per tick, {tuned}"
    )
    print(f"\n{'stage (tick thread CPU, median ms)':44} {'ms':>7}")
    ordered = sorted(stages.rounds.items(), key=lambda kv: -statistics.median(kv[1]))
    for name, values in ordered:
        print(f"{name:44} {med(values):7.2f}")
    medians = {k: statistics.median(v) * 1000 for k, v in stages.rounds.items()}
    collectors = sum(v for k, v in medians.items() if k.startswith("collector "))
    timed = sum(v for k, v in medians.items() if not k.startswith("collector "))
    print(f"{'  all collectors (sum of medians)':44} {collectors:7.2f}")
    print(f"{'  the rest of the stages (sum of medians)':44} {timed:7.2f}")
    print(f"\n{'tick thread CPU per tick (median)':44} {tick:7.2f}")
    print(f"{'process CPU per tick (+ OTLP export, receiver)':44} {med(process):7.2f}")
    print(f"{'node_exporter CPU per scrape (mean)':44} {node_cpu:7.2f}")
    print(
        f"ratio tick / scrape: {tick / node_cpu:.2f} (tick thread), {med(process) / node_cpu:.2f} (process)"
    )


if __name__ == "__main__":
    main()
