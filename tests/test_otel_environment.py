"""The OpenTelemetry SDK variables: OTEL_SDK_DISABLED, OTEL_METRICS_EXPORTER, OTEL_METRIC_EXPORT_INTERVAL,
the OTLP temporality preference (deltas from our cumulative points) and a stable service.instance.id.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader, MetricsData, Sum

from otel_sysops.agent import build_pipeline
from otel_sysops.errors import ConfigError
from otel_sysops.resource import INSTANCE_ID_NAMESPACE, build_resource
from otel_sysops.settings import Settings, load_settings, resolve_otel_environment
from otel_sysops.sinks._temporality import DeltaConverter

BASE = {"SYSOPS_PROMETHEUS__PORT": "0"}


def _load(**env: str) -> Settings:
    return load_settings(None, None, environ={**BASE, **env})


def _sinks(settings: Settings) -> list[str]:
    pipeline = build_pipeline(settings)
    try:
        return sorted(type(s).__name__ for s in pipeline.sinks)
    finally:
        pipeline.close(1.0)


def test_defaults_without_otel_variables() -> None:
    choices = resolve_otel_environment({})
    assert (choices.sdk_disabled, choices.exporters, choices.interval, choices.temporality) == (
        False,
        None,
        None,
        "cumulative",
    )
    settings = _load()
    assert settings.prometheus.enabled is True
    assert settings.otlp.enabled is None
    assert settings.interval == 10.0


def test_sdk_disabled_exports_nothing_but_the_agent_still_collects(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="otel_sysops"):
        settings = _load(
            OTEL_SDK_DISABLED="TRUE",
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4317",
            SYSOPS_PROMETHEUS__ENABLED="true",
        )
    assert settings.otlp.enabled is False
    assert settings.prometheus.enabled is False
    lines = [r for r in caplog.records if "OTEL_SDK_DISABLED" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    pipeline = build_pipeline(settings)
    # Only the ring store the analyzers read: the agent still collects and analyses.
    assert [type(s).__name__ for s in pipeline.sinks] == ["StoreSink"]
    result = pipeline.tick()
    assert result is not None
    assert pipeline.store.series_count > 0


def test_sdk_disabled_false_and_odd_values() -> None:
    assert resolve_otel_environment({"OTEL_SDK_DISABLED": "false"}).sdk_disabled is False
    odd = resolve_otel_environment({"OTEL_SDK_DISABLED": "yes"})
    assert odd.sdk_disabled is False
    assert odd.warnings
    assert "OTEL_SDK_DISABLED" in odd.warnings[0]


@pytest.mark.parametrize(
    ("value", "otlp", "prometheus"),
    [
        ("none", False, False),
        ("otlp", True, False),
        ("prometheus", False, True),
        ("otlp, prometheus", True, True),
        ("PROMETHEUS,otlp", True, True),
    ],
)
def test_metrics_exporter_picks_the_sinks(value: str, otlp: bool, prometheus: bool) -> None:
    settings = _load(OTEL_METRICS_EXPORTER=value)
    assert settings.otlp.enabled is otlp
    assert settings.prometheus.enabled is prometheus
    sinks = _sinks(settings)
    assert ("OtlpSink" in sinks) is otlp
    assert ("PrometheusSink" in sinks) is prometheus


def test_explicit_settings_win_over_metrics_exporter() -> None:
    settings = _load(
        OTEL_METRICS_EXPORTER="otlp", SYSOPS_PROMETHEUS__ENABLED="true", SYSOPS_OTLP__ENABLED="false"
    )
    assert settings.prometheus.enabled is True
    assert settings.otlp.enabled is False


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OTEL_METRICS_EXPORTER": "console"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_METRICS_EXPORTER": "none,otlp"}, "OTEL_METRICS_EXPORTER"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "10s"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "7200000"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        (
            {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "sideways"},
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
        ),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        _load(**env)


def test_export_interval_is_the_default_interval(tmp_path: Path) -> None:
    assert _load(OTEL_METRIC_EXPORT_INTERVAL="15000").interval == 15.0
    assert _load(OTEL_METRIC_EXPORT_INTERVAL="15000", SYSOPS_INTERVAL="5").interval == 5.0
    config = tmp_path / "c.toml"
    config.write_text("interval = 2\n")
    assert (
        load_settings(config, None, environ={**BASE, "OTEL_METRIC_EXPORT_INTERVAL": "15000"}).interval == 2.0
    )


def _cumulative_collections() -> tuple[MetricsData, MetricsData, MetricsData]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    values = iter([100, 130, 5])
    meter.create_observable_counter("c", [lambda _o: [Observation(next(values), {"k": "v"})]])
    meter.create_observable_up_down_counter("u", [lambda _o: [Observation(7, {})]])
    meter.create_observable_gauge("g", [lambda _o: [Observation(0.5, {})]])
    first, second, third = (reader.get_metrics_data() for _ in range(3))
    provider.shutdown()
    assert first is not None
    assert second is not None
    assert third is not None
    return first, second, third


def _by_name(data: MetricsData) -> dict[str, object]:
    return {m.name: m.data for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def test_delta_from_cumulative_points() -> None:
    first, second, third = _cumulative_collections()
    converter = DeltaConverter()
    one, two, three = (_by_name(converter.convert(d)) for d in (first, second, third))
    # The first counter point has nothing to subtract: held back. Gauges and up-down counters pass.
    assert "c" not in one
    assert set(one) == {"u", "g"}
    counter = two["c"]
    assert isinstance(counter, Sum)
    assert counter.aggregation_temporality == AggregationTemporality.DELTA
    (point,) = counter.data_points
    assert point.value == 30
    previous = _by_name(first)["c"]
    assert isinstance(previous, Sum)
    assert point.start_time_unix_nano == previous.data_points[0].time_unix_nano
    # A reset (130 -> 5) reports the new value.
    reset = three["c"]
    assert isinstance(reset, Sum)
    assert reset.data_points[0].value == 5
    up_down = two["u"]
    assert isinstance(up_down, Sum)
    assert up_down.aggregation_temporality == AggregationTemporality.CUMULATIVE


def test_service_instance_id_is_stable_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    settings = load_settings(None, {"host_root": str(tmp_path), "prometheus": {"enabled": False}}, environ={})
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    one = build_resource(settings, environ={}).attributes["service.instance.id"]
    two = build_resource(settings, environ={}).attributes["service.instance.id"]
    assert one == two
    assert uuid.UUID(str(one)).version == 5
    assert one == str(uuid.uuid5(INSTANCE_ID_NAMESPACE, "otel-sysops/0123456789abcdef0123456789abcdef"))
    # Another service name on the same host is another instance.
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge")
    assert build_resource(settings, environ={}).attributes["service.instance.id"] != one
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=agent-7")
    assert build_resource(settings, environ={}).attributes["service.instance.id"] == "agent-7"
