"""Serve the latest collection on /metrics, rendered once per tick: a scrape never collects."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Iterable

from opentelemetry.exporter.prometheus import _CustomCollector
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.openmetrics.exposition import generate_latest as _render_openmetrics

from ._exposition import TextRenderer

_log = logging.getLogger(__name__)


class _Families:
    """A prometheus_client collector that yields a fixed list of families."""

    def __init__(self, families: list[PromMetric]) -> None:
        self._families = families

    def collect(self) -> Iterable[PromMetric]:
        return iter(self._families)


class PrometheusSink:
    """Translate each collection with the OTel exporter's rules and cache the exposition bytes."""

    name = "prometheus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[PromMetric] = []
        self._rendered: dict[str, bytes] = {}
        self._renderer = TextRenderer()

    def consume(self, data: MetricsData, timestamp: float) -> None:
        # The exporter's collector holds the standard OTel -> Prometheus translation (units, _total,
        # target_info); we feed it one collection and keep the families it yields.
        # Scope labels (otel_scope_*) on every series would only add cardinality: one scope per metric here.
        translator = _CustomCollector(disable_target_info=False, scope_info_enabled=False)
        translator.add_metrics_data(data)
        families = list(translator.collect())
        text = self._renderer.render(families)
        with self._lock:
            self._families = families
            self._rendered = {"text": text}

    def render(self, fmt: str = "text", gzipped: bool = False) -> bytes:
        """Return the cached exposition of the latest collection ("text" or "openmetrics")."""
        key = fmt + (".gz" if gzipped else "")
        with self._lock:
            cached = self._rendered.get(key)
            if cached is not None:
                return cached
            families = self._families
            plain = self._rendered.get(fmt)
        if plain is None:
            plain = _render_openmetrics(_Families(families)) if fmt == "openmetrics" else b""  # type: ignore[no-untyped-call]
        body = gzip.compress(plain, compresslevel=1) if gzipped else plain
        with self._lock:
            if self._families is families:
                self._rendered.setdefault(fmt, plain)
                self._rendered[key] = body
        return body

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        """Nothing to release: the agent's HTTP server serves /metrics (see sinks._http)."""
