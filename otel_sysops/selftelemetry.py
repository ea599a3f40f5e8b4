"""The agent's own health as metrics: collector cost and errors, refused series, export failures."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from .plugin import ErrorCounter
from .sinks import Sink
from .store import RingStore


class SelfState:
    """Figures the pipeline updates each tick and the self-telemetry callbacks read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.durations: dict[str, float] = {}
        self.tick_duration = 0.0
        self.ticks = 0


def _rss_bytes(procfs: Path) -> int | None:
    # proc(5): /proc/self/statm field 2 is resident pages.
    try:
        fields = (procfs / "self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def register_self_telemetry(
    meter: Meter,
    state: SelfState,
    errors: ErrorCounter,
    store: RingStore,
    sinks: Callable[[], Iterable[Sink]],
    procfs: Path,
    extra_errors: Callable[[], Mapping[tuple[str, str], int]] | None = None,
) -> None:
    """Create the `otel_sysops.*` instruments."""

    def durations(_: CallbackOptions) -> Iterable[Observation]:
        with state.lock:
            items = list(state.durations.items())
        return [Observation(seconds, {"otel_sysops.collector": name}) for name, seconds in items]

    def error_counts(_: CallbackOptions) -> Iterable[Observation]:
        counts = dict(errors.snapshot())
        if extra_errors is not None:
            counts.update(extra_errors())
        return [
            Observation(n, {"otel_sysops.collector": plugin, "error.type": kind})
            for (plugin, kind), n in counts.items()
        ]

    def refused(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(store.refused)]

    def evicted(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(store.evicted, {"otel_sysops.reason": "expired"}),
            Observation(store.evicted_full, {"otel_sysops.reason": "store_full"}),
        ]

    def series(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(store.series_count)]

    def export_failures(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sink.failures(), {"otel_sysops.sink": sink.name}) for sink in sinks()]

    def export_dropped(_: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(int(getattr(sink, "dropped", 0)), {"otel_sysops.sink": sink.name}) for sink in sinks()
        ]

    def tick(_: CallbackOptions) -> Iterable[Observation]:
        with state.lock:
            return [Observation(state.tick_duration)]

    def cpu(_: CallbackOptions) -> Iterable[Observation]:
        times = os.times()
        return [
            Observation(times.user, {"cpu.mode": "user"}),
            Observation(times.system, {"cpu.mode": "system"}),
        ]

    def rss(_: CallbackOptions) -> Iterable[Observation]:
        value = _rss_bytes(procfs)
        return [] if value is None else [Observation(value)]

    meter.create_observable_gauge(
        "otel_sysops.collector.duration", [durations], "s", "Time the collector's last sample took"
    )
    meter.create_observable_counter(
        "otel_sysops.collector.errors",
        [error_counts],
        "{error}",
        "Errors per collector and kind (malformed lines, permissions, timeouts)",
    )
    meter.create_observable_counter(
        "otel_sysops.series.refused",
        [refused],
        "{series}",
        "New series the ring store refused because it was full of live series",
    )
    meter.create_observable_counter(
        "otel_sysops.series.evicted",
        [evicted],
        "{series}",
        "Series the ring store freed: expired (no point for store.evict_after) or ended ones "
        "freed early because the store was full",
    )
    meter.create_observable_up_down_counter(
        "otel_sysops.series.active", [series], "{series}", "Series held in the ring store"
    )
    meter.create_observable_counter(
        "otel_sysops.export.failures", [export_failures], "{failure}", "Failed exports per sink"
    )
    meter.create_observable_counter(
        "otel_sysops.export.dropped",
        [export_dropped],
        "{collection}",
        "Collections dropped per sink after retries or on a full buffer",
    )
    meter.create_observable_gauge(
        "otel_sysops.tick.duration", [tick], "s", "Wall time of the previous tick (collect and fan-out)"
    )
    meter.create_observable_counter("otel_sysops.cpu.time", [cpu], "s", "CPU time used by the agent")
    meter.create_observable_up_down_counter(
        "otel_sysops.memory.rss", [rss], "By", "Resident memory of the agent"
    )
