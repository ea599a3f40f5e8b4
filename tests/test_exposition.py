"""Our text renderer gives byte-for-byte what prometheus_client renders, on a real collection."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from opentelemetry.exporter.prometheus import _CustomCollector
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric

from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from otel_sysops.sinks._exposition import TextRenderer


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return iter(self.families)


def test_a_whole_host_collection_renders_exactly_as_prometheus_client_does(
    make_settings: Callable[..., Settings],
) -> None:
    pipe = Pipeline(make_settings())  # every installed collector
    pipe.tick()
    data = pipe.tick().data
    pipe.close(1.0)
    translator = _CustomCollector(disable_target_info=False, scope_info_enabled=False)
    translator.add_metrics_data(data)
    families = list(translator.collect())
    ours = TextRenderer().render(families)
    assert ours == generate_latest(Families(families))
    assert ours.count(b"\n") > 300


def test_awkward_values_types_and_created_samples_match_too() -> None:
    counter = CounterMetricFamily("c", "doc with \\ and\nnewline", labels=["path"], created=1700000000.5)
    counter.add_metric(['C:\\dir "quoted"\nline'], 3.0, created=1700000000.5)
    gauge = GaugeMetricFamily("g_bytes", "gauge", labels=["a", "b"], unit="bytes")
    for value in (float("inf"), float("-inf"), float("nan"), 1e21, 123456789.0, -0.0):
        gauge.add_metric(["x", str(value)], value)
    info = InfoMetricFamily("target", "Target metadata", value={"host_name": "db-1", "k": "ü"})
    families: list[Metric] = [counter, gauge, info]
    assert TextRenderer().render(families) == generate_latest(Families(families))


def test_an_invalid_label_name_is_refused() -> None:
    bad = GaugeMetricFamily("g", "gauge", labels=["ok"])
    bad.add_metric(["v"], 1.0)
    bad.samples[0] = bad.samples[0]._replace(labels={"not ok": "v"})
    with pytest.raises(ValueError, match="invalid label name"):
        TextRenderer().render([bad])
