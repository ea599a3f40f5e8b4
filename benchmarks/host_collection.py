"""Host collection, side by side in one run: CPU per collection and series exported.

1. ours: one full tick of `Pipeline(Settings())`, analyzers off, with every installed collector
   (`time.process_time()` over N ticks, after two warm-up ticks so rates and top-N exist);
2. Prometheus node_exporter (Debian `prometheus-node-exporter`, default collectors), started on a
   free localhost port: its own CPU (utime+stime from /proc/<pid>/stat) over N scrapes;
3. `opentelemetry-instrumentation-system-metrics` with an InMemoryMetricReader: CPU per collection.

The CPU cost per series is compared inside one run with a peer: the same pipeline restricted to
the collectors of an earlier release (`--peer`, default the thirteen collectors before the host
coverage families), measured alternately with the full set (A B A B, `--rounds`).

Usage: python benchmarks/host_collection.py [--n 50] [--rounds 2] [--peer cpu,memory,...] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.metrics.export import MetricsData

from otel_sysops.pipeline import Pipeline, iter_points
from otel_sysops.settings import Settings

HZ = os.sysconf("SC_CLK_TCK")
# The collectors before the host-coverage families (network stack, interfaces, time, kernel, CPU
# hardware, memory detail, RAID, disk health) were added.
EARLIER = "cpu,memory,gpu,paging,disk,filesystem,pressure,fd,system,hardware,network,process,cgroup"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host_series(data: MetricsData) -> int:
    """Count the points that describe the host (the agent's own `otel_sysops.*` left out)."""
    return sum(1 for metric, _ in iter_points(data) if not metric.name.startswith("otel_sysops."))


def ours(n: int, enabled: list[str] | None = None) -> tuple[float, int, dict[str, float], Pipeline]:
    """Return CPU ms per tick, host series per tick, CPU ms per collector, and the pipeline."""
    # A collection, not analysis: the analyzers (which node_exporter does not have) are off here;
    # benchmarks/tick.py measures the whole tick.
    pipe = Pipeline(Settings(analyzers={"enabled": False}, instrumentation={"enabled": enabled}))
    for _ in range(2):
        pipe.tick()
    start = time.process_time()
    for _ in range(n):
        result = pipe.tick()
    per_tick = (time.process_time() - start) / n * 1000
    series = host_series(result.data)
    per_collector: dict[str, float] = {}
    for name, collector in pipe.collectors.items():
        start = time.process_time()
        for _ in range(n):
            pipe.files.clear()
            collector.collect(time.monotonic())
        per_collector[name] = (time.process_time() - start) / n * 1000
    return per_tick, series, per_collector, pipe


def tick_breakdown(pipe: Pipeline, n: int) -> dict[str, float]:
    """Return CPU ms per tick of each stage of `Pipeline.tick()`, run stage by stage."""
    stages = {"sample (all collectors)": 0.0, "SDK collect (callbacks, storage)": 0.0, "churning meters": 0.0}
    for sink in pipe.sinks:
        stages[f"sink {sink.name}"] = 0.0
    for i in range(n):
        t0 = time.process_time()
        pipe.sample()
        t1 = time.process_time()
        data = pipe.reader.collect_once()
        t2 = time.process_time()
        assert data is not None
        data = pipe._with_churn(data, time.time_ns())  # the stage itself, measured alone
        t3 = time.process_time()
        stages["sample (all collectors)"] += t1 - t0
        stages["SDK collect (callbacks, storage)"] += t2 - t1
        stages["churning meters"] += t3 - t2
        for sink in pipe.sinks:
            t4 = time.process_time()
            sink.consume(data, time.time() + i)
            stages[f"sink {sink.name}"] += time.process_time() - t4
    return {name: total / n * 1000 for name, total in stages.items()}


def connection_counting(n: int) -> dict[str, float]:
    """Return CPU ms per count of every IPv4/IPv6 TCP and UDP socket, by method."""
    import psutil

    from instrumentation._sockets import NetlinkSource, ProcNetSource

    own = Path("/proc/self/net")
    methods: dict[str, Callable[[], object]] = {
        "netlink sock_diag, TIME_WAIT from sockstat (ours)": NetlinkSource(
            sockstat=lambda: (own / "sockstat").read_text() + (own / "sockstat6").read_text()
        ).count,
        "netlink sock_diag, every socket": NetlinkSource().count,
        "/proc/net/tcp,tcp6,udp,udp6 (our fallback)": ProcNetSource(own).count,
        "psutil.net_connections('inet')": lambda: psutil.net_connections("inet"),
    }
    out = {}
    for name, count in methods.items():
        count()
        start = time.process_time()
        for _ in range(n):
            count()
        out[name] = (time.process_time() - start) / n * 1000
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def node_exporter(n: int) -> tuple[float, int] | None:
    """Return node_exporter's CPU ms per scrape and series per scrape (None when not installed)."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        return None
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                body = urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(2):
            urllib.request.urlopen(url, timeout=5).read()
        time.sleep(0.5)  # let start-up work (GC, goroutines) settle
        before = _cpu_seconds(proc.pid)
        for _ in range(n):
            body = urllib.request.urlopen(url, timeout=10).read()
        after = _cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return (after - before) / n * 1000, series


def system_metrics(n: int) -> tuple[float, int]:
    """Return CPU ms per collection and series of opentelemetry-instrumentation-system-metrics."""
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = SystemMetricsInstrumentor()
    instrumentor.instrument(meter_provider=provider)
    try:
        for _ in range(2):
            reader.get_metrics_data()
        start = time.process_time()
        for _ in range(n):
            data = reader.get_metrics_data()
        per = (time.process_time() - start) / n * 1000
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    series = sum(1 for _ in iter_points(data)) if data is not None else 0
    return per, series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="collections per contender")
    parser.add_argument("--profile", action="store_true", help="profile the process collector")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds of ours against the peer")
    parser.add_argument("--peer", default=EARLIER, help="comma-separated collectors of the peer pipeline")
    args = parser.parse_args()

    peer = [c for c in args.peer.split(",") if c]
    pairs: list[tuple[float, int, float, int]] = []
    for _ in range(args.rounds):
        full_ms, full_series, _, full_pipe = ours(args.n)
        full_pipe.close(1.0)
        peer_ms, peer_series, _, peer_pipe = ours(args.n, peer)
        peer_pipe.close(1.0)
        pairs.append((full_ms, full_series, peer_ms, peer_series))
    print("CPU per series, all collectors (A) against the peer collectors (B), alternately:")
    print(
        f"  {'round':>5} {'A ms':>7} {'A series':>9} {'A us/series':>12}"
        f" {'B ms':>7} {'B series':>9} {'B us/series':>12} {'A/B':>6}"
    )
    for i, (a_ms, a_n, b_ms, b_n) in enumerate(pairs, 1):
        a_per, b_per = a_ms * 1000 / a_n, b_ms * 1000 / b_n
        print(
            f"  {i:5d} {a_ms:7.2f} {a_n:9d} {a_per:12.2f}"
            f" {b_ms:7.2f} {b_n:9d} {b_per:12.2f} {a_per / b_per:6.2f}"
        )
    print()

    our_ms, our_series, per_collector, pipe = ours(args.n)
    node = node_exporter(args.n)
    sm_ms, sm_series = system_metrics(args.n)

    print(
        f"host: {os.cpu_count()} CPUs, {sum(1 for p in os.listdir('/proc') if p.isdecimal())} processes, "
        f"{args.n} collections each; collectors: {', '.join(sorted(pipe.collectors))}"
    )
    print(
        f"{'':44} {'CPU ms/collection':>18} {'series':>7} {'us/series':>10}"
        f" {'CPU vs ours':>12} {'series vs ours':>15}"
    )
    rows = [("otel-sysops (Pipeline, all collectors)", our_ms, our_series)]
    if node is not None:
        rows.append(("node_exporter 1.5 scrape (default collectors)", node[0], node[1]))
    else:
        print("node_exporter: not installed (apt-get install prometheus-node-exporter)")
    rows.append(("opentelemetry-instrumentation-system-metrics", sm_ms, sm_series))
    for name, ms, series in rows:
        per = ms * 1000 / series
        print(
            f"{name:44} {ms:18.2f} {series:7d} {per:10.2f} {ms / our_ms:11.2f}x {series / our_series:14.2f}x"
        )
    print("\nours, CPU ms per tick by stage:")
    for name, ms in tick_breakdown(pipe, args.n).items():
        print(f"  {name:34} {ms:7.2f}")
    sockets = sum(1 for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
    sockets += sum(1 for line in Path("/proc/net/tcp6").read_text().splitlines()[1:])
    print(f"\nconnection counting, CPU ms per count ({sockets} TCP sockets now):")
    for name, ms in connection_counting(args.n).items():
        print(f"  {name:52} {ms:7.2f}")
    print("\nours, CPU ms per collector sample (sample() only, files re-read):")
    for name, ms in sorted(per_collector.items(), key=lambda kv: -kv[1]):
        print(f"  {name:14} {ms:7.2f}")
    if args.profile and "process" in pipe.collectors:
        collector = pipe.collectors["process"]
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.n):
            collector.collect(time.monotonic())
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    pipe.close(1.0)


if __name__ == "__main__":
    main()
