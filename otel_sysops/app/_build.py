"""Assemble the pipeline and its sinks from the settings."""

from __future__ import annotations

import os

from otel_sysops.findings import AlertSink
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings, resolve_otel_environment
from otel_sysops.sinks import (
    OtlpSink,
    PrometheusSink,
    make_exporter,
    otlp_enabled,
    otlp_protocol,
    with_temporality,
)


def build_pipeline(
    settings: Settings, alerts: AlertSink | None = None, previous: Pipeline | None = None
) -> Pipeline:
    """Assemble the pipeline with the sinks the settings ask for.

    With `previous` (a reload), its ring store and rollup database carry over when their shape is
    unchanged, so the analyzers keep their history.
    """
    pipeline = Pipeline(settings, alert_sink=alerts, store=previous.store if previous else None)
    if previous is not None and pipeline.store is previous.store:
        pipeline.rollup_db, previous.rollup_db = previous.rollup_db, None
    if otlp_enabled(settings.otlp):
        exporter = make_exporter(otlp_protocol(settings.otlp))
        # OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta: deltas from our cumulative points.
        exporter = with_temporality(exporter, resolve_otel_environment(os.environ).temporality)
        pipeline.add_sink(
            OtlpSink(
                exporter,
                settings.otlp.queue_size,
                settings.otlp.max_attempts,
                max_points=settings.otlp.max_points,
            )
        )
    if settings.prometheus.enabled:
        pipeline.add_sink(PrometheusSink())
    return pipeline
