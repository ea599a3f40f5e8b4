"""One analyzer tick over 10,000 series with 360-point windows: milliseconds per tick, bytes per series.

    python benchmarks/analyzers_tick.py [--series 10000] [--ticks 20]

The store is filled with an hour of 10 s data (360 points per series) spread over the metrics the
default rules watch, then each analyzer's `analyze()` is timed on fresh ticks. Peer: the same
ensemble maths run one series at a time (what a per-series Python loop would cost), as a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from analyzers.anomaly import AnomalyAnalyzer
from analyzers.ensemble import EnsembleParams, EnsembleState, ensemble_step
from analyzers.leak import LeakAnalyzer
from analyzers.threshold import ThresholdAnalyzer
from analyzers.trend import TrendAnalyzer
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import load_settings
from otel_sysops.store import RingStore, attr_key

INTERVAL = 10.0
WINDOW = 360


def _layout(total: int) -> dict[str, list[tuple[tuple[str, str], ...]]]:
    """Split `total` series over watched metrics: filesystems, CPUs, processes, and other metrics."""
    share = total // 5
    return {
        "system.filesystem.utilization": [
            attr_key({"system.device": f"d{i}", "system.filesystem.mountpoint": f"/m{i}"})
            for i in range(share)
        ],
        "sysops.cpu.busy": [attr_key({"cpu": str(i)}) for i in range(share)],
        "process.memory.usage": [
            attr_key({"process.pid": str(i), "process.executable.name": "app"}) for i in range(share)
        ],
        "app.requests": [attr_key({"route": f"/r{i}"}) for i in range(total - 3 * share)],
    }


def _nbytes(obj: object) -> int:
    """Return the bytes of every array held by a (nested) slotted state object."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    return sum(_nbytes(getattr(obj, name)) for name in getattr(obj, "__slots__", ()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=30)
    args = parser.parse_args()
    settings = load_settings(
        None,
        {"interval": INTERVAL, "store": {"raw_window": WINDOW * INTERVAL, "max_series": args.series * 2}},
        environ={},
    )
    store = RingStore(interval=INTERVAL, raw_window=WINDOW * INTERVAL, max_series=args.series * 2)
    layout = _layout(args.series)
    rng = np.random.default_rng(0)
    now = 1_700_000_000.0

    def put_tick() -> None:
        nonlocal now
        now += INTERVAL
        store.begin_tick(now)
        for metric, keys in layout.items():
            store.put(metric, keys, rng.random(len(keys)) * 0.7)

    for _ in range(WINDOW):
        put_tick()
    analyzers: dict[str, Analyzer] = {
        name: cls(AnalyzerContext(name, settings, store))
        for name, cls in (
            ("threshold", ThresholdAnalyzer),
            ("anomaly", AnomalyAnalyzer),
            ("trend", TrendAnalyzer),
            ("leak", LeakAnalyzer),
        )
    }
    for analyzer in analyzers.values():  # first call builds per-series state
        list(analyzer.analyze(now))
    # Wall time, and CPU time of this thread: the machine is shared, and the CPU figure is what the
    # tick costs when it is not waiting for a core.
    times: dict[str, list[float]] = {name: [] for name in analyzers}
    cpu: dict[str, list[float]] = {name: [] for name in analyzers}
    totals: list[float] = []
    cpu_totals: list[float] = []
    for _ in range(args.ticks):
        put_tick()
        total = cpu_total = 0.0
        for name, analyzer in analyzers.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            list(analyzer.analyze(now))
            took, took_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
            times[name].append(took)
            cpu[name].append(took_cpu)
            total += took
            cpu_total += took_cpu
        totals.append(total)
        cpu_totals.append(cpu_total)
    series = store.series_count
    print(f"{series} series, {WINDOW}-point windows, {args.ticks} ticks of {INTERVAL:.0f} s")
    print(
        f"  {'analyzer':<10} {'wall mean':>10} {'wall max':>10} {'cpu mean':>10} {'cpu max':>10}"
        "  (ms per tick)"
    )
    rows = [*((n, times[n], cpu[n]) for n in analyzers), ("all", totals, cpu_totals)]
    for name, wall, used in rows:
        print(
            f"  {name:<10} {statistics.fmean(wall) * 1000:10.1f} {max(wall) * 1000:10.1f}"
            f" {statistics.fmean(used) * 1000:10.1f} {max(used) * 1000:10.1f}"
        )
    print("  (trend and leak refit every 60 s: their max is the refit tick)")

    anomaly = analyzers["anomaly"]
    assert isinstance(anomaly, AnomalyAnalyzer)
    state_bytes = _nbytes(anomaly.state)
    print(
        f"bytes per series: ring store {store.nbytes() / series:,.0f} (raw window + rollups), "
        f"ensemble state {state_bytes / series:,.0f}"
    )

    # Peer: the same ensemble step, one series at a time, over a sample of series (extrapolated).
    params = EnsembleParams().scaled(INTERVAL)
    sample = 500
    x = rng.random(args.series)
    one = [EnsembleState.empty(1, params) for _ in range(sample)]
    start = time.perf_counter()
    for i in range(sample):
        ensemble_step(params, one[i], x[i : i + 1])
    loop = (time.perf_counter() - start) / sample * args.series
    batch_state = EnsembleState.empty(args.series, params)
    start = time.perf_counter()
    ensemble_step(params, batch_state, x)
    batch = time.perf_counter() - start
    print(
        f"ensemble step over {args.series} series: vectorised {batch * 1000:.1f} ms, "
        f"per-series loop {loop * 1000:.0f} ms (x{loop / batch:.0f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
