"""Footprint of `otel-sysops run` with the default configuration, side by side with its peers.

Runs, in one go:
  - `otel-sysops run` (embedded defaults) for --minutes, sampling RSS, USS (private memory) and CPU;
  - Prometheus node_exporter (Debian `prometheus-node-exporter`) on a free port, same sampling;
  - scrape latency of our /metrics (cached rendering), node_exporter's /metrics, and the
    OpenTelemetry Python default (PrometheusMetricReader + opentelemetry-instrumentation-system-metrics,
    which collects on every scrape).
Prints a table with ratios. Usage: python benchmarks/agent_footprint.py [--minutes 10] [--interval 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def memory(pid: int) -> tuple[float, float, float]:
    """Return (RSS, USS, AnonHugePages) in MB; USS = private clean + private dirty (what the
    process alone costs); AnonHugePages = the part of RSS in transparent huge pages."""
    rss = uss = huge = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key in ("Private_Clean", "Private_Dirty"):
            uss += int(rest.split()[0])
        elif key == "AnonHugePages":
            huge = int(rest.split()[0])
    return rss / 1024, uss / 1024, huge / 1024


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def scrape_ms(url: str, n: int) -> tuple[float, int]:
    """Return the median wall ms of n scrapes and the number of series in the last one."""
    times = []
    body = b""
    for _ in range(n):
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        times.append((time.perf_counter() - start) * 1000)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return statistics.median(times), series


OTEL_DEFAULT = textwrap.dedent("""
    import sys, time
    from prometheus_client import start_http_server
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    from opentelemetry import metrics
    reader = PrometheusMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    SystemMetricsInstrumentor().instrument()
    start_http_server(int(sys.argv[1]), addr="127.0.0.1")
    while True:
        time.sleep(60)
""")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    ours_port = free_port()
    env.update(SYSOPS_PROMETHEUS__PORT=str(ours_port), SYSOPS_INTERVAL=str(args.interval))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    procs["otel-sysops"] = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    urls["otel-sysops"] = f"http://127.0.0.1:{ours_port}/metrics"
    node = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if node:
        port = free_port()
        procs["node_exporter"] = subprocess.Popen(
            [node, f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        urls["node_exporter"] = f"http://127.0.0.1:{port}/metrics"
    port = free_port()
    procs["otel-python default"] = subprocess.Popen(
        [sys.executable, "-c", OTEL_DEFAULT, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    urls["otel-python default"] = f"http://127.0.0.1:{port}/metrics"
    try:
        for url in urls.values():
            wait_http(url)
        time.sleep(args.interval + 1)  # our first collection plus one rate
        latency = {name: scrape_ms(url, args.scrapes) for name, url in urls.items()}
        # Memory and CPU of the agent over the run: no scrapes but Prometheus-like ones every 15 s.
        start_cpu = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        start = time.monotonic()
        end = start + args.minutes * 60
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in procs}
        while time.monotonic() < end:
            for name, url in urls.items():
                urllib.request.urlopen(url, timeout=10).read()
                samples[name].append(memory(procs[name].pid))
            time.sleep(min(15.0, max(0.0, end - time.monotonic())))
        elapsed = time.monotonic() - start
        cpu = {name: (cpu_seconds(p.pid) - start_cpu[name]) / elapsed * 100 for name, p in procs.items()}
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            p.wait(15)

    print(
        f"footprint after {args.minutes:g} min, interval {args.interval:g} s, a scrape every 15 s "
        f"({os.cpu_count()} cores, Python {sys.version.split()[0]})"
    )
    print(f"{'':22s} {'RSS MB':>8s} {'USS MB':>8s} {'CPU % core':>11s} {'scrape ms':>10s} {'series':>7s}")
    for name in procs:
        rss, uss, _ = samples[name][-1]
        print(
            f"{name:22s} {rss:8.1f} {uss:8.1f} {cpu[name]:11.3f} "
            f"{latency[name][0]:10.2f} {latency[name][1]:7d}"
        )
    ours = samples["otel-sysops"][-1]
    print(f"otel-sysops RSS over the run (MB): {[round(s[0], 1) for s in samples['otel-sysops']]}")
    print(f"otel-sysops AnonHugePages at the end: {ours[2]:.1f} MB")
    for name in procs:
        if name != "otel-sysops":
            print(
                f"ratio otel-sysops/{name}: RSS {ours[0] / samples[name][-1][0]:.2f}, "
                f"USS {ours[1] / samples[name][-1][1]:.2f}, "
                f"scrape {latency['otel-sysops'][0] / latency[name][0]:.2f}"
            )


if __name__ == "__main__":
    main()
