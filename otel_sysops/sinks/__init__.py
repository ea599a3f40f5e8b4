"""Where one tick's collection goes: the ring store, OTLP, the Prometheus endpoint."""

from ._base import Sink, StoreSink
from ._http import metrics_handler
from ._otlp import OtlpSink, make_exporter, otlp_enabled, otlp_protocol
from ._prometheus import PrometheusSink
from ._temporality import with_temporality

__all__ = [
    "OtlpSink",
    "PrometheusSink",
    "Sink",
    "StoreSink",
    "make_exporter",
    "metrics_handler",
    "otlp_enabled",
    "otlp_protocol",
    "with_temporality",
]
