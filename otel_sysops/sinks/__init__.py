"""Where one tick's collection goes: the ring store, OTLP, the Prometheus endpoint."""

from ._base import Sink, StoreSink
from ._prometheus import PrometheusSink

__all__ = ["PrometheusSink", "Sink", "StoreSink"]
