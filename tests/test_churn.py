"""Stable counters on the churning meter: start times of live series only, kept across a failure."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import Metric, NumberDataPoint

from otel_sysops.churn import ChurningMeter

SECOND = 1_000_000_000


def starts_by_pid(metrics: list[Metric]) -> dict[int, int]:
    out: dict[int, int] = {}
    for metric in metrics:
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)
            out[int(str(point.attributes["process.pid"]))] = point.start_time_unix_nano  # type: ignore[index]
    return out


def test_start_times_of_departed_series_are_forgotten_so_memory_follows_the_live_set() -> None:
    meter = ChurningMeter("test", stable=True)
    live = {"pids": [1]}

    def cpu(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1.0, {"process.pid": pid}) for pid in live["pids"]]

    meter.create_observable_counter("test.process.cpu.time", [cpu], "s")
    first = starts_by_pid(meter.collect(SECOND))[1]
    for tick in range(2, 500):  # 500 PIDs come and go, two live at a time
        live["pids"] = [tick, tick + 1]
        meter.collect(tick * SECOND)
        assert len(meter._instruments[0].starts) <= 2 * 2 + 64
    live["pids"] = [1]
    # The PID came back long after it left: it starts anew at the previous collection.
    assert starts_by_pid(meter.collect(500 * SECOND)) == {1: 499 * SECOND}
    assert first == SECOND


def test_a_failing_callback_does_not_reset_the_start_times_of_its_series() -> None:
    meter = ChurningMeter("test", stable=True)
    state = {"fail": False}

    def cpu(_: CallbackOptions) -> Iterable[Observation]:
        if state["fail"]:
            raise OSError("proc unreadable")
        return [Observation(1.0, {"process.pid": pid}) for pid in range(100)]

    def one(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1.0, {"process.pid": -1})]

    meter.create_observable_counter("test.process.cpu.time", [cpu, one], "s")
    meter.collect(SECOND)
    state["fail"] = True
    meter.collect(2 * SECOND)  # 100 series missing, one live: they are not departed
    state["fail"] = False
    starts = starts_by_pid(meter.collect(3 * SECOND))
    assert starts[0] == SECOND
    assert starts[99] == SECOND
