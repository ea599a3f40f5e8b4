"""One collection per tick, fanned out: every callback runs once, every sink sees the same values."""

from __future__ import annotations

import re
import threading
import tracemalloc
from collections.abc import Callable, Iterable, Iterator

import pytest
from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData, NumberDataPoint

from otel_sysops.churn import ChurningMeter
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Collector, CollectorContext
from otel_sysops.settings import Settings
from otel_sysops.sinks import PrometheusSink
from otel_sysops.sinks._otlp import OtlpSink
from tests.points import data_points, number_points


class RecordingExporter:
    """An OTLP exporter stand-in behind the sink's Exporter protocol: keeps what it is given."""

    def __init__(self, results: list[MetricExportResult] | None = None) -> None:
        self.received: list[MetricsData] = []
        self.results = list(results or [])
        self.calls = 0
        self.done = threading.Event()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        self.calls += 1
        result = self.results.pop(0) if self.results else MetricExportResult.SUCCESS
        if result is MetricExportResult.SUCCESS:
            self.received.append(metrics_data)
            self.done.set()
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        return None


class CountingCollector(Collector[int]):
    """A collector whose sample and callbacks count how often they run."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.samples = 0
        self.calls = {"gauge": 0, "counter": 0, "churn": 0}

    def sample(self, now: float) -> int:
        self.samples += 1
        return self.samples

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge("test.gauge", [self._gauge], "1")
        meter.create_observable_counter("test.counter", [self._counter], "By")
        churn.create_observable_gauge("test.churn", [self._churn], "1")

    def _gauge(self, _: CallbackOptions) -> Iterable[Observation]:
        self.calls["gauge"] += 1
        assert self.snapshot is not None
        return [Observation(self.snapshot * 1.5, {"k": "a"}), Observation(self.snapshot * 2.5, {"k": "b"})]

    def _counter(self, _: CallbackOptions) -> Iterable[Observation]:
        self.calls["counter"] += 1
        assert self.snapshot is not None
        return [Observation(self.snapshot * 1000)]

    def _churn(self, _: CallbackOptions) -> Iterable[Observation]:
        self.calls["churn"] += 1
        assert self.snapshot is not None
        return [Observation(self.snapshot + 0.25, {"process.pid": self.snapshot})]


def _values(data: MetricsData) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (m.name, tuple(sorted((k, str(v)) for k, v in (p.attributes or {}).items()))): float(p.value)
        for m, p in number_points(data)
        if m.name.startswith("test.")
    }


def _prometheus_values(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        match = re.match(r"^(test_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if match:
            out[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return out


@pytest.fixture
def pipeline(
    make_settings: Callable[..., Settings],
) -> Iterable[tuple[Pipeline, CountingCollector, RecordingExporter, PrometheusSink]]:
    settings = make_settings(interval=1.0)
    pipe = Pipeline(settings, load=False)
    collector = CountingCollector(CollectorContext("counting", settings))
    pipe.add_collector("counting", collector)
    exporter = RecordingExporter()
    prom = PrometheusSink()
    pipe.add_sink(OtlpSink(exporter))
    pipe.add_sink(prom)
    yield pipe, collector, exporter, prom
    pipe.close(2.0)


def test_each_callback_runs_once_per_tick_with_all_sinks_on(
    pipeline: tuple[Pipeline, CountingCollector, RecordingExporter, PrometheusSink],
) -> None:
    pipe, collector, _exporter, prom = pipeline
    for _ in range(5):
        pipe.tick()
        # A scrape serves the cached collection: it must not run callbacks.
        prom.render()
        prom.render("openmetrics")
    assert collector.samples == 5
    assert collector.calls == {"gauge": 5, "counter": 5, "churn": 5}


def test_one_tick_reaches_otlp_prometheus_and_store_with_the_same_values(
    pipeline: tuple[Pipeline, CountingCollector, RecordingExporter, PrometheusSink],
) -> None:
    pipe, _, exporter, prom = pipeline
    result = pipe.tick()
    assert exporter.done.wait(5)
    sent = _values(exporter.received[-1])
    assert sent == _values(result.data)
    assert sent == {
        ("test.gauge", (("k", "a"),)): 1.5,
        ("test.gauge", (("k", "b"),)): 2.5,
        ("test.counter", ()): 1000.0,
        ("test.churn", (("process.pid", "1"),)): 1.25,
    }
    scraped = _prometheus_values(prom.render().decode())
    assert scraped == {
        'test_gauge_ratio{k="a"}': 1.5,
        'test_gauge_ratio{k="b"}': 2.5,
        "test_counter_bytes_total": 1000.0,
        'test_churn_ratio{process_pid="1"}': 1.25,
    }
    for (name, attrs), value in sent.items():
        _, stored = pipe.store.last(name, dict(attrs), 1)
        assert stored[-1] == value


def test_plain_sdk_instrument_overflows_past_the_cardinality_limit(
    make_settings: Callable[..., Settings],
) -> None:
    # The problem the churning instruments exist for: the SDK folds attribute sets past 2,000.
    pipe = Pipeline(make_settings(), load=False)
    state = {"tick": 0}

    def pids(_: CallbackOptions) -> Iterable[Observation]:
        base = state["tick"] * 500
        return [Observation(1.0, {"process.pid": base + i}) for i in range(500)]

    # The pipeline's own meters keep observable instruments out of SDK storage; a plain SDK meter.
    pipe.provider.get_meter("test").create_observable_gauge("test.sdk_pids", [pids])
    names: set[str] = set()
    for tick in range(6):
        state["tick"] = tick
        data = pipe.tick().data
        names |= {k for m, p in data_points(data) if m.name == "test.sdk_pids" for k in p.attributes or {}}
    pipe.close(1.0)
    assert "otel.metric.overflow" in names


def test_ten_thousand_pids_over_time_never_overflow_and_memory_stays_bounded(
    make_settings: Callable[..., Settings],
) -> None:
    pipe = Pipeline(make_settings(store={"max_series": 5000, "evict_after": 5.0}), load=False)
    churn = pipe.churning_meter("test")
    state = {"tick": 0}
    per_tick, ticks = 50, 400  # 20,000 attribute sets in all, 50 alive at a time

    def pids(_: CallbackOptions) -> Iterable[Observation]:
        base = state["tick"] * per_tick
        return [Observation(float(i), {"process.pid": base + i}) for i in range(per_tick)]

    churn.create_observable_gauge("test.process.memory", [pids], "By")
    seen = 0  # a count, not a set: the test's own memory must not grow with the PIDs
    tracemalloc.start()
    mid = 0
    try:
        for tick in range(ticks):
            state["tick"] = tick
            data = pipe.tick(timestamp=1_000_000.0 + tick).data
            points = [p for m, p in number_points(data) if m.name == "test.process.memory"]
            assert len(points) == per_tick
            pids_now = {(p.attributes or {}).get("process.pid") for p in points}
            assert pids_now == set(range(tick * per_tick, (tick + 1) * per_tick))  # no overflow point
            seen += len(pids_now)
            if tick == ticks // 4:
                mid = tracemalloc.get_traced_memory()[0]
        end = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        pipe.close(1.0)
    assert seen == per_tick * ticks
    # The live set is constant, so memory after 300 more ticks (15,000 more PIDs) stays where it was.
    assert end < mid * 1.25 + 256 * 1024, (mid, end)
    assert pipe.store.series_count < 5000
    assert pipe.store.refused == 0


def test_pipeline_observables_report_what_the_sdk_reports(make_settings: Callable[..., Settings]) -> None:
    # The pipeline's meters keep observable instruments out of SDK storage; the points must be the
    # SDK's: same values and attributes, a counter's start time kept while its series comes and
    # goes, no start time on a gauge, and a raising callback costing only its own instrument.
    pipe = Pipeline(make_settings(), load=False)
    state = {"tick": 0}

    def counts(_: CallbackOptions) -> Iterable[Observation]:
        tick = state["tick"]
        points = [Observation(10 * tick, {"k": "a"})]
        if tick != 1:  # "b" is missing from the second tick, then back
            points.append(Observation(100 + tick, {"k": "b"}))
        return points

    def level(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(0.5 + state["tick"], {"k": "a"})]

    def broken(_: CallbackOptions) -> Iterable[Observation]:
        raise OSError("gone")

    sdk = pipe.provider.get_meter("test.sdk")
    ours = pipe.meter("test.ours")
    for meter, prefix in ((sdk, "sdk"), (ours, "ours")):
        meter.create_observable_counter(f"{prefix}.count", [counts])
        meter.create_observable_up_down_counter(f"{prefix}.updown", [counts])
        meter.create_observable_gauge(f"{prefix}.level", [level])
        meter.create_observable_gauge(f"{prefix}.broken", [broken])
    starts: dict[tuple[str, object], set[int | None]] = {}
    for tick in range(3):
        state["tick"] = tick
        got: dict[str, dict[str, set[tuple[object, ...]]]] = {"sdk": {}, "ours": {}}
        for metric, point in number_points(pipe.tick().data):
            prefix, _, name = metric.name.partition(".")
            if prefix not in got:
                continue
            assert name != "broken"
            assert point.attributes is not None
            got[prefix].setdefault(name, set()).add((tuple(sorted(point.attributes.items())), point.value))
            if prefix == "ours":
                if name == "level":
                    assert point.start_time_unix_nano is None
                else:
                    key = (name, point.attributes["k"])
                    starts.setdefault(key, set()).add(point.start_time_unix_nano)
        assert got["ours"] == got["sdk"]
        assert set(got["ours"]) == {"count", "updown", "level"}
    pipe.close(1.0)
    assert all(len(s) == 1 for s in starts.values()), starts


def test_a_generator_callback_stays_with_the_sdk(make_settings: Callable[..., Settings]) -> None:
    # The API also takes generators (sent the options, yielding observations); the SDK runs them.
    pipe = Pipeline(make_settings(), load=False)

    def gen() -> Iterator[Iterable[Observation]]:
        n = 0
        while True:
            n += 1
            yield [Observation(n, {"k": "g"})]

    pipe.meter("test").create_observable_counter("test.gen", [gen()])  # type: ignore[list-item]
    values = [p.value for _ in range(2) for m, p in number_points(pipe.tick().data) if m.name == "test.gen"]
    pipe.close(1.0)
    assert len(values) == 2
    assert values[1] == values[0] + 1  # the SDK primes it once at creation, then sends per tick


def test_a_stable_counter_keeps_each_series_start_however_its_attributes_are_given() -> None:
    meter = ChurningMeter("test.starts", stable=True)
    given: list[list[Observation]] = [
        [Observation(1, {"a": "1", "b": "2"}), Observation(1, {"tags": ["x", "y"]})],
        [Observation(2, {"b": "2", "a": "1"}), Observation(2, {"tags": ["x", "y"]})],  # reordered
        [Observation(3, {"a": "1", "b": "2"}), Observation(3, {"a": "new"})],
    ]
    tick = iter(given)
    meter.create_observable_counter("test.count", [lambda _: next(tick)])
    starts: dict[frozenset[tuple[str, object]], set[int | None]] = {}
    for now in (100, 200, 300):
        (metric,) = meter.collect(now)
        for point in metric.data.data_points:
            assert isinstance(point, NumberDataPoint)
            items = {k: tuple(v) if isinstance(v, list) else v for k, v in (point.attributes or {}).items()}
            starts.setdefault(frozenset(items.items()), set()).add(point.start_time_unix_nano)
    assert starts == {
        frozenset({("a", "1"), ("b", "2")}): {100},
        frozenset({("tags", ("x", "y"))}): {100},
        frozenset({("a", "new")}): {200},  # new at the third tick: starts at the previous one
    }
