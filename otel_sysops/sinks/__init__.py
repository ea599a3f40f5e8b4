"""Where one tick's collection goes: the ring store, OTLP, the Prometheus endpoint."""

from ._base import Sink, StoreSink
from ._http import metrics_handler
from ._naming import Kind as MetricKind
from ._naming import label_name, metric_name
from ._otlp import OtlpSink, make_exporter, otlp_enabled, otlp_protocol
from ._prometheus import PrometheusSink
from ._temporality import with_temporality

__all__ = [
    "MetricKind",
    "OtlpSink",
    "PrometheusSink",
    "Sink",
    "StoreSink",
    "label_name",
    "make_exporter",
    "metric_name",
    "metrics_handler",
    "otlp_enabled",
    "otlp_protocol",
    "with_temporality",
]
