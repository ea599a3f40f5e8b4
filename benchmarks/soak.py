"""Soak: `otel-sysops run` at 1 s ticks, short-lived processes churning, a dead OTLP endpoint.

Runs the agent (default configuration, interval 1 s, OTLP pointed at a port nobody listens on)
for --minutes while a spawner starts --processes short-lived processes in all (each lives
--lifetime seconds, spread evenly over the run), alongside node_exporter. Samples RSS of both
every 10 s and reads the agent's own series gauges from /metrics; prints RSS at start, peak and
end, and the series the store holds and refused.
Usage: python benchmarks/soak.py [--minutes 30] [--processes 2000] [--lifetime 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def huge_mb(pid: int) -> float:
    """Return the part of RSS in transparent huge pages (AnonHugePages), in MB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def self_gauges(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        body = urllib.request.urlopen(url, timeout=10).read().decode()
    except OSError:
        return out
    for line in body.splitlines():
        if line.startswith(("otel_sysops_series_", "otel_sysops_export_dropped")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2000)
    parser.add_argument("--lifetime", type=float, default=20.0)
    args = parser.parse_args()

    port, dead = free_port(), free_port()  # nothing listens on `dead`
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        SYSOPS_INTERVAL="1",
        SYSOPS_PROMETHEUS__PORT=str(port),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead}",
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node_bin = shutil.which("prometheus-node-exporter")
    node = (
        subprocess.Popen(
            [node_bin, f"--web.listen-address=127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if node_bin
        else None
    )
    url = f"http://127.0.0.1:{port}/metrics"
    children: list[subprocess.Popen[bytes]] = []
    samples: list[tuple[float, float, float]] = []
    spawned = 0
    start = time.monotonic()
    end = start + args.minutes * 60
    gap = args.minutes * 60 / max(args.processes, 1)
    next_spawn = start
    next_sample = start + 5
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            while spawned < args.processes and now >= next_spawn:
                children.append(subprocess.Popen(["sleep", str(args.lifetime)]))
                spawned += 1
                next_spawn += gap
            children = [c for c in children if c.poll() is None]
            if now >= next_sample:
                node_rss = rss_mb(node.pid) if node else float("nan")
                samples.append((now - start, rss_mb(agent.pid), node_rss))
                next_sample += 10
            time.sleep(min(0.2, gap))
        gauges = self_gauges(url)
        huge = huge_mb(agent.pid)
    finally:
        for child in children:
            child.kill()
        agent.terminate()
        if node:
            node.terminate()
        agent.wait(30)
        if node:
            node.wait(10)
    print(
        f"soak {args.minutes:g} min at 1 s ticks, {spawned} short-lived processes "
        f"({args.lifetime:g} s each), "
        f"OTLP endpoint dead; {os.cpu_count()} cores (shared machine)"
    )
    ours = [s[1] for s in samples]
    theirs = [s[2] for s in samples]
    print(f"{'RSS MB':12} {'start':>8} {'peak':>8} {'end':>8}")
    print(f"{'otel-sysops':12} {ours[0]:8.1f} {max(ours):8.1f} {ours[-1]:8.1f}")
    print(f"{'node_exporter':12} {theirs[0]:8.1f} {max(theirs):8.1f} {theirs[-1]:8.1f}")
    print("otel-sysops RSS every 10 s:", [round(x, 1) for x in ours])
    print(f"otel-sysops AnonHugePages at the end: {huge:.1f} MB")
    for name, value in sorted(gauges.items()):
        print(f"  {name} {value:g}")


if __name__ == "__main__":
    main()
