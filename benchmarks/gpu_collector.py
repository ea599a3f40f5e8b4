"""Cost of the GPU collector per tick over the fake NVML, side by side with the NVML calls alone.

No GPU here, so NVML's own cost (tens of µs per call on real drivers) is not measured: the fake
answers in about a microsecond. What this measures is the collector's Python overhead around the
calls (error handling, snapshot, callbacks, SDK collection, ring store), against the floor of
making the very same calls in a bare loop (replayed from a recording of one collector tick).

    PYTHONPATH=. python benchmarks/gpu_collector.py [gpus] [ticks]
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from instrumentation._nvml import NvmlModule
from instrumentation.gpu import GpuCollector
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import load_settings
from tests.fakes.fake_nvml import FakeLink, FakeNvml, as_nvml, default_gpus


class Recording:
    """Wrap a FakeNvml and record every nvml* call of one tick as (function, args)."""

    def __init__(self, nvml: FakeNvml) -> None:
        self._nvml = nvml
        self.NVMLError = nvml.NVMLError
        self.record: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._nvml, name)
        if not name.startswith("nvml") or not callable(fn):
            return fn

        def call(*args: Any) -> Any:
            if self.record is not None:
                self.record.append((fn, args))
            return fn(*args)

        return call


def fleet(n: int) -> list[Any]:
    healthy = default_gpus()[0]
    return [
        dataclasses.replace(
            healthy,
            uuid=f"GPU-{i:08d}-0000-0000-0000-000000000000",
            bus_id=f"00000000:{i + 1:02X}:00.0",
            nvlinks=[FakeLink(tx_kib=i, rx_kib=i) for _ in range(4)],
            processes=[(1000 + j, 1 << 30) for j in range(20)],
        )
        for i in range(n)
    ]


def per_tick(fn: Callable[[], object], ticks: int) -> float:
    samples = []
    for _ in range(ticks):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    gpus = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    ticks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    settings = load_settings(None, {"prometheus": {"enabled": False}, "interval": 10.0}, environ={})
    # Record one tick's calls with a collector of its own, after a first tick has learnt the
    # NVLink topology and the unsupported queries.
    recorded = Recording(FakeNvml(fleet(gpus)))
    # A __getattr__ proxy: like the real binding, it is an NvmlModule only at runtime.
    recorder = GpuCollector(CollectorContext("gpu", settings), nvml=cast(NvmlModule, recorded))
    recorder.collect(0.0)
    recorded.record = []
    recorder.collect(10.0)
    calls = recorded.record
    recorder.close()

    fake = FakeNvml(fleet(gpus))
    pipeline = Pipeline(settings, load=False)
    collector = GpuCollector(
        CollectorContext("gpu", settings, pipeline.files, pipeline.errors), nvml=as_nvml(fake)
    )
    pipeline.add_collector("gpu", collector)
    collector.collect(time.monotonic())

    def replay() -> None:
        for fn, args in calls:
            with contextlib.suppress(fake.NVMLError):
                fn(*args)

    ts = [1_000_000.0]

    def tick() -> None:
        ts[0] += 10.0
        pipeline.tick(ts[0])

    empty = Pipeline(settings, load=False)
    ets = [1_000_000.0]

    def empty_tick() -> None:
        ets[0] += 10.0
        empty.tick(ets[0])

    base = per_tick(empty_tick, ticks)
    empty.close(2.0)
    floor = per_tick(replay, ticks)
    sample = per_tick(lambda: collector.collect(time.monotonic()), ticks)
    full = per_tick(tick, ticks)
    points = sum(len(m.data.data_points) for rm in pipeline.tick(ts[0] + 10).data.resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics)  # fmt: skip
    pipeline.close(2.0)
    print(
        f"{gpus} fake GPUs, {len(calls)} NVML calls per tick ({len(calls) / gpus:.0f} per GPU),",
        f"{points} points",
    )
    print(f"{'NVML calls alone (floor)':<40}{floor * 1e3:8.3f} ms/tick  1.00x")
    print(f"{'collector.sample()':<40}{sample * 1e3:8.3f} ms/tick  {sample / floor:.2f}x")
    print(f"{'pipeline tick (sample+SDK+store)':<40}{full * 1e3:8.3f} ms/tick  {full / floor:.2f}x")
    print(f"{'pipeline tick, no collector (baseline)':<40}{base * 1e3:8.3f} ms/tick")


if __name__ == "__main__":
    main()
