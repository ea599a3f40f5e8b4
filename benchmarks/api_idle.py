"""What the local API and page cost when no one looks, and whether history writes can delay a tick.

Part 1 (idle cost): two agents assembled the same way (pipeline with the default collectors, the
alert manager, the HTTP server with /metrics-style routes) tick side by side for --seconds; one
also has the API, the page, the event hub's tick sink and the alert history mounted. Rounds run
A and B at the same time and alternate which starts first; CPU seconds and RSS/USS are read
from /proc after each round. Printed side by side with the ratio.

Part 2 (tick safety): `AlertManager.submit` timed per call for a storm of firings and
resolutions with no observer, with the history observer, and with the history's database
locked by another connection (the writer stalls; the queue fills and drops, the caller does not).

Usage: python benchmarks/api_idle.py [--seconds 60] [--rounds 2] [--interval 1]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def memory(pid: int) -> tuple[float, float]:
    """Return (RSS, USS) in MB."""
    rss = uss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key in ("Private_Clean", "Private_Dirty"):
            uss += int(rest.split()[0])
    return rss / 1024, uss / 1024


def child(api_on: bool, seconds: float, interval: float, state: Path) -> None:
    """Assemble an agent by hand and tick it; print READY after the warm-up, then run `seconds`."""
    from otel_sysops.alerts import AlertManager
    from otel_sysops.api import ApiParts, build_api
    from otel_sysops.http import HttpServer, Response
    from otel_sysops.pipeline import Pipeline
    from otel_sysops.settings import load_settings

    settings = load_settings(None, {"interval": interval, "prometheus": {"enabled": False}}, environ={})
    pipeline = Pipeline(settings)
    manager = AlertManager("bench")
    server = HttpServer("127.0.0.1", 0)
    server.mount("/healthz", lambda _: Response(200, b"ok\n", "text/plain"))
    api = None
    if api_on:
        parts = ApiParts(lambda: pipeline, manager, dict, state, time.time(), "bench")
        api = build_api(parts, settings.api)
        pipeline.add_sink(api.tick_sink(pipeline.store))
        for prefix, handler in api.handlers.items():
            server.mount(prefix, handler)
    server.start()
    for _ in range(5):
        pipeline.tick()
    print("READY", flush=True)
    end = time.monotonic() + seconds
    deadline = time.monotonic()
    while time.monotonic() < end:
        pipeline.tick()
        deadline += interval
        time.sleep(max(0.0, deadline - time.monotonic()))
    print("DONE", flush=True)
    sys.stdin.readline()  # measured by the parent now; exit when told
    server.close(1.0)
    if api is not None:
        api.close(2.0)
    pipeline.close(2.0)


def idle_rounds(seconds: float, rounds: int, interval: float) -> list[dict[str, tuple[float, float, float]]]:
    out = []
    for r in range(rounds):
        order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
        procs: dict[str, subprocess.Popen[str]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for mode in order:
                procs[mode] = subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        "--seconds",
                        str(seconds),
                        "--interval",
                        str(interval),
                        "--state",
                        tmp,
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    env={k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))},
                )
            for p in procs.values():
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "READY"
            start = {m: cpu_seconds(p.pid) for m, p in procs.items()}
            for p in procs.values():
                assert p.stdout is not None
                assert p.stdout.readline().strip() == "DONE"
            result = {}
            for m, p in procs.items():
                rss, uss = memory(p.pid)
                result[m] = (cpu_seconds(p.pid) - start[m], rss, uss)
                assert p.stdin is not None
                p.stdin.write("\n")
                p.stdin.flush()
            for p in procs.values():
                p.wait(30)
        out.append(result)
    return out


def submit_latency(n: int) -> dict[str, tuple[float, float, float, int]]:
    from otel_sysops.alerts import AlertManager, Finding, Severity
    from otel_sysops.api import AlertHistory

    findings = []
    for i in range(n):
        attrs = {"cpu": str(i % 500)}
        findings.append(Finding(f"rule.{i % 7}", "system.cpu.utilization", attrs, Severity.WARNING, "m", 0.9))
        findings.append(Finding(f"rule.{i % 7}", "system.cpu.utilization", attrs, None, "ok", 0.1))
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in ("no observer", "history", "history, database locked"):
            manager = AlertManager("bench")
            history = None
            blocker = None
            if case != "no observer":
                path = Path(tmp) / f"{case.replace(' ', '_').replace(',', '')}.db"
                history = AlertHistory(path, 30 * 86400.0, 100_000, 10_000)
                manager.add_observer(history)
                if "locked" in case:
                    blocker = sqlite3.connect(path, isolation_level=None)
                    blocker.execute("BEGIN EXCLUSIVE")
            times = []
            for finding in findings:
                t = time.perf_counter()
                manager.submit(finding)
                times.append(time.perf_counter() - t)
            dropped = history.dropped if history is not None else 0
            if blocker is not None:
                blocker.execute("ROLLBACK")
                blocker.close()
            if history is not None:
                history.close(10.0)
            times.sort()
            p50 = times[len(times) // 2] * 1e6
            p99 = times[int(len(times) * 0.99)] * 1e6
            out[case] = (p50, p99, times[-1] * 1e6, dropped)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--child", choices=("on", "off"))
    parser.add_argument("--state", type=Path)
    parser.add_argument("--findings", type=int, default=20_000)
    args = parser.parse_args()
    if args.child:
        child(args.child == "on", args.seconds, args.interval, args.state)
        return
    rounds = idle_rounds(args.seconds, args.rounds, args.interval)
    print(
        f"idle cost: {args.rounds} rounds of {args.seconds:g} s, tick every {args.interval:g} s, both at once"
    )
    print(
        f"{'round':>5}  {'API on: CPU s':>13} {'RSS MB':>7} {'USS MB':>7}  "
        f"{'API off: CPU s':>14} {'RSS MB':>7} {'USS MB':>7}  {'CPU on/off':>10} {'RSS on-off':>10}"
    )
    for i, r in enumerate(rounds):
        on, off = r["on"], r["off"]
        print(
            f"{i:>5}  {on[0]:>13.2f} {on[1]:>7.1f} {on[2]:>7.1f}  "
            f"{off[0]:>14.2f} {off[1]:>7.1f} {off[2]:>7.1f}  {on[0] / off[0]:>10.3f} {on[1] - off[1]:>+10.2f}"
        )
    cpu_ratio = statistics.mean(r["on"][0] / r["off"][0] for r in rounds)
    rss_diff = statistics.mean(r["on"][1] - r["off"][1] for r in rounds)
    uss_diff = statistics.mean(r["on"][2] - r["off"][2] for r in rounds)
    print(f"mean: CPU on/off {cpu_ratio:.3f}, RSS on-off {rss_diff:+.2f} MB, USS on-off {uss_diff:+.2f} MB")
    print()
    print(f"AlertManager.submit, {2 * args.findings} findings (firing + resolving), per call:")
    print(f"{'case':<26} {'p50 us':>8} {'p99 us':>8} {'max us':>9} {'dropped':>8}")
    for case, (p50, p99, worst, dropped) in submit_latency(args.findings).items():
        print(f"{case:<26} {p50:>8.1f} {p99:>8.1f} {worst:>9.1f} {dropped:>8}")


if __name__ == "__main__":
    main()
