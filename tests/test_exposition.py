"""The /metrics exposition: Go-translator names, no empty labels, both formats parse (two parsers)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as OtelHistogram
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import load_settings
from otel_sysops.sinks import PrometheusSink

# -- the Go translator's documented rules, written out independently of otel_sysops.sinks._naming --
# (prometheus/otlptranslator and the Collector's pkg/translator/prometheus: BuildCompliantName with
# metric suffixes on). Units map to words; a `/` splits a "per" unit; `{...}` units add nothing.
GO_UNITS = {
    "d": "days", "h": "hours", "min": "minutes", "s": "seconds", "ms": "milliseconds",
    "us": "microseconds", "ns": "nanoseconds", "By": "bytes", "KiBy": "kibibytes",
    "MiBy": "mebibytes", "GiBy": "gibibytes", "TiBy": "tebibytes", "KBy": "kilobytes",
    "MBy": "megabytes", "GBy": "gigabytes", "TBy": "terabytes", "m": "meters", "V": "volts",
    "A": "amperes", "J": "joules", "W": "watts", "g": "grams", "Cel": "celsius", "Hz": "hertz",
    "1": "", "%": "percent",
}  # fmt: skip
GO_PER_UNITS = {
    "s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year",
}  # fmt: skip


def go_tokens(text: str) -> list[str]:
    """strings.FieldsFunc(text, not letter-or-digit)."""
    tokens, current = [], ""
    for ch in text:
        if ch.isascii() and ch.isalnum():
            current += ch
        elif current:
            tokens.append(current)
            current = ""
    return [*tokens, current] if current else tokens


def go_name(metric: Metric) -> str:
    tokens = go_tokens(metric.name)
    parts = (metric.unit or "").split("/", 1)
    main = parts[0].strip()
    if main and not set(main) & set("{}"):
        word = "_".join(go_tokens(GO_UNITS.get(main, main)))
        if word and word not in tokens:
            tokens.append(word)
    if len(parts) > 1 and parts[1].strip() and not set(parts[1]) & set("{}"):
        word = "_".join(go_tokens(GO_PER_UNITS.get(parts[1].strip(), parts[1].strip())))
        if word and word not in tokens:
            tokens += ["per", word]
    if isinstance(metric.data, Sum) and metric.data.is_monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if metric.unit == "1" and isinstance(metric.data, Gauge):
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    name = "_".join(tokens)
    return "_" + name if name[:1].isdigit() else name


def go_series_names(data: MetricsData) -> set[str]:
    out = set()
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if not metric.data.data_points:
                    continue
                name = go_name(metric)
                if isinstance(metric.data, OtelHistogram):
                    out |= {name + "_bucket", name + "_count", name + "_sum"}
                else:
                    out.add(name)
    return out


def sample_names(text: str) -> set[str]:
    return set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)) - {"target_info"}


def _has_metric(data: MetricsData, name: str) -> bool:
    return any(
        m.name == name and list(m.data.data_points)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    )


@pytest.fixture(scope="module")
def host() -> tuple[MetricsData, PrometheusSink]:
    # Every installed collector and analyzer; settings from no file and no environment.
    pipe = Pipeline(load_settings(None, {"prometheus": {"enabled": False}}, environ={}))
    sink = PrometheusSink()
    pipe.add_sink(sink)
    try:
        pipe.tick()
        # Rates and utilizations need two samples with the CPU counters moved between them: tick
        # until the second-sample figures are there (waits on that state, not on a fixed time).
        deadline = time.monotonic() + 30
        while True:
            data = pipe.tick().data
            if _has_metric(data, "system.cpu.utilization") or time.monotonic() > deadline:
                break
    finally:
        pipe.close(1.0)
    return data, sink


def test_names_are_the_go_translators_for_a_whole_host(host: tuple[MetricsData, PrometheusSink]) -> None:
    data, sink = host
    expected = go_series_names(data)
    assert len(expected) > 50
    assert sample_names(sink.render().decode()) == expected
    assert "system_cpu_utilization_ratio" in expected  # a unit-1 gauge
    assert "system_disk_io_bytes_total" in expected  # a counter with a unit


def test_no_empty_label_in_either_format_and_both_parse(host: tuple[MetricsData, PrometheusSink]) -> None:
    _, sink = host
    text, om = sink.render().decode(), sink.render("openmetrics").decode()
    assert '=""' not in text
    assert '=""' not in om
    assert om.endswith("# EOF\n")
    text_families = {f.name: f for f in parse_text(text)}
    om_families = {f.name: f for f in parse_openmetrics(om)}  # type: ignore[no-untyped-call]  # unannotated upstream
    assert text_families.keys() - {"target_info"} == om_families.keys() - {"target"}
    assert sum(len(f.samples) for f in text_families.values()) == sink.samples
    for family in text_families.values():
        for sample in family.samples:
            assert all(value != "" for value in sample.labels.values()), sample


@pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian promtool not installed")
def test_promtool_accepts_the_text_exposition(
    host: tuple[MetricsData, PrometheusSink],
) -> None:
    _, sink = host
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=sink.render(), capture_output=True, timeout=60, check=False
    )
    # promtool 2.42 exits 3 for lint findings too (semconv's `*.count` gauges end in `_count`), and
    # names a parse failure "error while linting"; every other line names a metric it parsed.
    report = done.stderr.decode()
    assert "error while linting" not in report, report
    names = {line.split(" ", 1)[0] for line in report.splitlines()}
    assert names <= sample_names(sink.render().decode()), report


def _data(points: dict[str, list[NumberDataPoint]], with_histogram: bool = False) -> MetricsData:
    metrics = [
        Metric(name="demo.load", description="a gauge", unit="1", data=Gauge(data_points=points["gauge"])),
        Metric(
            name="demo.io",
            description='a "counter"\nover lines',
            unit="By",
            data=Sum(
                data_points=points["counter"],
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
                is_monotonic=True,
            ),
        ),
    ]
    if with_histogram:
        hpoint = HistogramDataPoint(
            attributes={"op": "read"},
            start_time_unix_nano=1,
            time_unix_nano=2,
            count=3,
            sum=0.75,
            bucket_counts=[1, 2, 0],
            explicit_bounds=[0.1, 1.0],
            min=0.05,
            max=0.5,
        )
        metrics.append(
            Metric(
                name="demo.latency",
                description="h",
                unit="s",
                data=OtelHistogram([hpoint], AggregationTemporality.CUMULATIVE),
            )
        )
    scope = ScopeMetrics(InstrumentationScope("t"), metrics, "")
    resource = Resource({"service.name": "otel-sysops", "host.name": "h1", "empty": ""})
    return MetricsData([ResourceMetrics(resource, [scope], "")])


def _point(value: float, **attributes: str) -> NumberDataPoint:
    return NumberDataPoint(attributes=attributes, start_time_unix_nano=1, time_unix_nano=2, value=value)


def test_each_series_has_only_its_own_labels_and_awkward_values_are_escaped() -> None:
    sink = PrometheusSink()
    gauge = [_point(0.5, cpu="0"), _point(float("nan"), cpu="1", mode=""), _point(float("inf"))]
    counter = [_point(7, path='C:\\dir "q"\nx', **{"net.dir": "rx", "net_dir": "tx"})]
    sink.consume(_data({"gauge": gauge, "counter": counter}, with_histogram=True), 0.0)
    text = sink.render().decode()
    lines = set(text.splitlines())
    assert 'demo_load_ratio{cpu="0"} 0.5' in lines
    assert 'demo_load_ratio{cpu="1"} NaN' in lines  # the empty `mode` is left out, not `mode=""`
    assert "demo_load_ratio +Inf" in lines
    # Attributes colliding after sanitizing are joined with `;` in the order of their names.
    assert 'demo_io_bytes_total{net_dir="rx;tx",path="C:\\\\dir \\"q\\"\\nx"} 7' in lines
    assert 'demo_latency_seconds_bucket{op="read",le="1.0"} 3' in lines
    assert 'demo_latency_seconds_bucket{op="read",le="+Inf"} 3' in lines
    assert 'target_info{host_name="h1",service_name="otel-sysops"} 1' in lines
    assert '# HELP demo_io_bytes_total a "counter"\\nover lines' in lines
    om = sink.render("openmetrics").decode()
    assert "# TYPE demo_io_bytes counter" in om.splitlines()
    families = {f.name: f for f in parse_openmetrics(om)}  # type: ignore[no-untyped-call]  # unannotated upstream
    assert families["demo_io_bytes"].samples[0].value == 7
    assert families["demo_latency_seconds"].type == "histogram"
    assert {f.name for f in parse_text(text)} >= {"demo_load_ratio", "demo_io_bytes", "target_info"}


def test_a_series_that_stops_reporting_is_gone_from_the_next_exposition() -> None:
    sink = PrometheusSink()
    sink.consume(_data({"gauge": [_point(1.0, pid="1"), _point(2.0, pid="2")], "counter": []}), 0.0)
    assert 'demo_load_ratio{pid="2"} 2.0' in sink.render().decode()
    sink.consume(_data({"gauge": [_point(1.5, pid="1")], "counter": []}), 1.0)
    text = sink.render().decode()
    assert 'demo_load_ratio{pid="1"} 1.5' in text
    assert 'pid="2"' not in text
    assert "demo_io_bytes" not in text  # a family with no points this tick has no header either


def test_gzip_is_made_once_per_tick_and_is_the_plain_bytes() -> None:
    import gzip

    sink = PrometheusSink()
    sink.consume(_data({"gauge": [_point(1.0)], "counter": []}), 0.0)
    first = sink.render("openmetrics", gzipped=True)
    assert sink.render("openmetrics", gzipped=True) is first
    assert gzip.decompress(first) == sink.render("openmetrics")
    sink.consume(_data({"gauge": [_point(2.0)], "counter": []}), 1.0)
    assert gzip.decompress(sink.render("openmetrics", gzipped=True)) == sink.render("openmetrics")
    assert sink.content_type("openmetrics").startswith("application/openmetrics-text")


def test_cached_prefixes_render_what_a_fresh_renderer_renders() -> None:
    """Series come and go and reorder, some collide once empty values are dropped, values are
    awkward: a renderer keeping its prefixes across ticks renders what a new one renders."""
    import random

    from otel_sysops.sinks._exposition import ExpositionRenderer

    rng = random.Random(7)
    kept = ExpositionRenderer()
    values = [0.5, float("nan"), float("inf"), -float("inf"), -0.0, 1e300, 7, True, 2**70]
    for _ in range(40):
        gauge = [
            _point(rng.choice(values), cpu=str(i), mode=rng.choice(["", "user"]))
            for i in rng.sample(range(6), rng.randint(0, 6))
        ]
        counter = [_point(rng.choice(values), **{"net.dir": "rx", "net_dir": rng.choice(["tx", ""])})]
        data = _data({"gauge": gauge, "counter": counter if rng.random() < 0.7 else []}, rng.random() < 0.5)
        got, want = kept.render(data), ExpositionRenderer().render(data)
        assert (got.text, got.openmetrics, got.samples) == (want.text, want.openmetrics, want.samples)


def test_sample_values_are_spelt_as_before() -> None:
    from otel_sysops.sinks._exposition import number

    spelt = [number(v) for v in (0.5, float("nan"), float("inf"), -float("inf"), -0.0, 1e300, 7, True)]
    assert spelt == ["0.5", "NaN", "+Inf", "-Inf", "-0.0", "1e+300", "7", "True"]
