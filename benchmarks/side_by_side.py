"""The agent's data path side by side with node_exporter 1.5, in one run (ratios, A B A B).

Measures, with the default configuration (every installed collector and analyzer, the ring store,
the Prometheus sink):
  1. CPU per tick (thread CPU of the tick) at interval 10 s and 1 s, and with analyzers off,
     against node_exporter's process CPU per scrape, interleaved round by round;
  2. CPU per exported point;
  3. /metrics bytes per sample (median sample line, and body bytes / samples), empty labels,
     anomaly series;
  4. 50 concurrent scrapers (OpenMetrics + gzip, as Prometheus asks) against our /metrics while
     the agent ticks every second: tick duration with and without them, scrape p50/p99; the same
     scrapers against node_exporter for its p99;
  5. `otel-sysops version` wall time against `prometheus-node-exporter --version`.
Usage: python benchmarks/side_by_side.py [--rounds 20] [--scrape-seconds 20]
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
import threading
import time
import urllib.request
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


def get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as r:
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


def pipeline(interval: float, analyzers: bool) -> Any:
    from otel_sysops.pipeline import Pipeline
    from otel_sysops.settings import load_settings
    from otel_sysops.sinks import PrometheusSink

    overrides: dict[str, Any] = {"prometheus": {"enabled": False}, "interval": interval}
    if not analyzers:
        overrides["analyzers"] = {"enabled": False}
    pipe = Pipeline(load_settings(None, overrides, environ={}))
    sink = PrometheusSink()
    pipe.add_sink(sink)
    return pipe, sink


def samples_of(body: bytes) -> list[bytes]:
    return [line for line in body.split(b"\n") if line and not line.startswith(b"#")]


def tick_vs_scrape(rounds: int, node_url: str, node_pid: int) -> dict[str, tuple[float, float, int]]:
    """Per config: (our CPU ms per tick, node_exporter CPU ms per scrape, points per tick)."""
    out: dict[str, tuple[float, float, int]] = {}
    for label, interval, analyzers in (
        ("default, interval 10 s", 10.0, True),
        ("default, interval 1 s", 1.0, True),
        ("analyzers off, interval 10 s", 10.0, False),
    ):
        pipe, _ = pipeline(interval, analyzers)
        for _ in range(3):
            pipe.tick()
            time.sleep(0.3)
        ours: list[float] = []
        node_cpu = 0.0
        scrapes = 0
        points = 0
        for _ in range(rounds):
            start = time.thread_time()
            result = pipe.tick()
            ours.append(time.thread_time() - start)
            points = sum(
                len(m.data.data_points)
                for rm in result.data.resource_metrics
                for sm in rm.scope_metrics
                for m in sm.metrics
            )
            before = cpu_seconds(node_pid)
            for _ in range(5):  # /proc's CPU clock is 10 ms coarse: five scrapes per round
                get(node_url)
            node_cpu += cpu_seconds(node_pid) - before
            scrapes += 5
            time.sleep(min(interval, 1.0) / 2)
        pipe.close(1.0)
        out[label] = (statistics.mean(ours) * 1000, node_cpu / scrapes * 1000, points)
    return out


SCRAPERS = textwrap.dedent("""
    import sys, threading, time, urllib.request, json
    url, seconds, n = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    headers = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
               "Accept-Encoding": "gzip"}
    lat, errors, lock, end = [], [], threading.Lock(), time.monotonic() + seconds
    def worker():
        while time.monotonic() < end:
            t = time.perf_counter()
            req = urllib.request.Request(url, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
            except OSError:  # node_exporter answers 503 past --web.max-requests (40)
                with lock:
                    errors.append(1)
                continue
            with lock:
                lat.append(time.perf_counter() - t)
    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"lat": lat, "errors": len(errors)}))
""")


def scrapers(url: str, seconds: float, n: int = 50) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", SCRAPERS, url, str(seconds), str(n)], stdout=subprocess.PIPE, text=True
    )


def latencies(proc: subprocess.Popen[str]) -> tuple[list[float], int]:
    import json

    out, _ = proc.communicate(timeout=600)
    result = json.loads(out)
    return sorted(result["lat"]), int(result["errors"])


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] * 1000 if values else float("nan")


def concurrent(seconds: float, node_url: str) -> dict[str, float]:
    pipe, sink = pipeline(1.0, True)
    from otel_sysops.http import HttpServer
    from otel_sysops.sinks import metrics_handler

    server = HttpServer("127.0.0.1", 0)
    server.mount("/metrics", metrics_handler(sink))
    host, port = server.start()
    url = f"http://{host}:{port}/metrics"
    durations: dict[str, list[float]] = {"quiet": [], "scraped": []}
    phase = {"name": "warm"}
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            pipe.tick()
            took = time.perf_counter() - start
            if phase["name"] in durations:
                durations[phase["name"]].append(took)
            stop.wait(max(0.0, 1.0 - took))

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()
    try:
        time.sleep(4)
        phase["name"] = "quiet"
        time.sleep(seconds)
        phase["name"] = "scraped"
        ours, ours_errors = latencies(scrapers(url, seconds))
        phase["name"] = "done"
        theirs, node_errors = latencies(scrapers(node_url, seconds))
    finally:
        stop.set()
        thread.join(30)
        server.close(5.0)
        pipe.close(1.0)
    quiet, scraped = statistics.median(durations["quiet"]), statistics.median(durations["scraped"])
    return {
        "tick ms quiet": quiet * 1000,
        "tick ms scraped": scraped * 1000,
        "tick ratio": scraped / quiet,
        "ours scrapes": len(ours),
        "ours errors": ours_errors,
        "node errors": node_errors,
        "ours p50": pct(ours, 0.5),
        "ours p99": pct(ours, 0.99),
        "node scrapes": len(theirs),
        "node p50": pct(theirs, 0.5),
        "node p99": pct(theirs, 0.99),
    }


def wall(argv: list[str], n: int = 10) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scrape-seconds", type=float, default=20.0)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    node, node_url = start_node()
    try:
        cpu = tick_vs_scrape(args.rounds, node_url, node.pid)
        pipe, sink = pipeline(10.0, True)
        pipe.tick()
        time.sleep(0.5)
        pipe.tick()
        ours_body, node_body = sink.render(), get(node_url)
        pipe.close(1.0)
        ours_lines, node_lines = samples_of(ours_body), samples_of(node_body)
        conc = concurrent(args.scrape_seconds, node_url)
    finally:
        node.terminate()
        node.wait(10)
    sysops = shutil.which("otel-sysops") or str(Path(sys.executable).parent / "otel-sysops")
    version = wall([sysops, "version"])
    node_version = wall([NODE or "true", "--version"])

    print(
        f"{os.cpu_count()} cores, load {load:.2f} at start (shared machine), Python {sys.version.split()[0]}"
    )
    print(
        f"\n{'CPU':32} {'ours ms/tick':>12} {'node ms/scrape':>15} {'ratio':>6} {'points':>7} {'µs/point':>9}"
    )
    for label, (ours_ms, node_ms, points) in cpu.items():
        print(
            f"{label:32} {ours_ms:12.2f} {node_ms:15.2f} {ours_ms / node_ms:6.2f} {points:7d} "
            f"{ours_ms * 1000 / max(points, 1):9.1f}"
        )
    med_ours = statistics.median(len(x) for x in ours_lines)
    med_node = statistics.median(len(x) for x in node_lines)
    print(f"\n{'/metrics (text)':32} {'ours':>10} {'node':>10} {'ratio':>6}")
    print(
        f"{'samples':32} {len(ours_lines):10d} {len(node_lines):10d} {len(ours_lines) / len(node_lines):6.2f}"
    )
    print(f"{'bytes':32} {len(ours_body):10d} {len(node_body):10d} {len(ours_body) / len(node_body):6.2f}")
    print(f"{'median sample line, bytes':32} {med_ours:10.0f} {med_node:10.0f} {med_ours / med_node:6.2f}")
    per_ours, per_node = len(ours_body) / len(ours_lines), len(node_body) / len(node_lines)
    print(f"{'body bytes per sample':32} {per_ours:10.1f} {per_node:10.1f} {per_ours / per_node:6.2f}")
    empty = ours_body.count(b'=""')
    print(f"empty-valued labels in ours: {empty}")
    print(f"anomaly series in ours: {sum(1 for x in ours_lines if x.startswith(b'sysops_anomaly'))}")
    print("\n50 concurrent scrapers (OpenMetrics, gzip), agent ticking every 1 s:")
    print(
        f"  tick median {conc['tick ms quiet']:.1f} ms without, {conc['tick ms scraped']:.1f} ms with "
        f"(ratio {conc['tick ratio']:.2f})"
    )
    print(
        f"  ours: {conc['ours scrapes']:.0f} scrapes ({conc['ours errors']:.0f} failed), "
        f"p50 {conc['ours p50']:.1f} ms, p99 {conc['ours p99']:.1f} ms"
    )
    print(
        f"  node_exporter: {conc['node scrapes']:.0f} scrapes ({conc['node errors']:.0f} failed), "
        f"p50 {conc['node p50']:.1f} ms, p99 {conc['node p99']:.1f} ms"
    )
    print(
        f"\n`otel-sysops version` {version * 1000:.0f} ms wall (median of 10); "
        f"`prometheus-node-exporter --version` {node_version * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
