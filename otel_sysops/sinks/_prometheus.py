"""Serve the latest collection on /metrics, rendered once per tick: a scrape never collects."""

from __future__ import annotations

import gzip
import logging
import threading

from opentelemetry.sdk.metrics.export import MetricsData

from ._exposition import ExpositionRenderer, Rendered

_log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "text": "text/plain; version=0.0.4; charset=utf-8",
    "openmetrics": "application/openmetrics-text; version=1.0.0; charset=utf-8",
}


class PrometheusSink:
    """Render each collection once (text and OpenMetrics) and hand scrapes the cached bytes."""

    name = "prometheus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gzip_lock = threading.Lock()
        self._renderer = ExpositionRenderer()
        self._rendered = Rendered(b"", b"# EOF\n", 0)
        self._gzipped: dict[str, bytes] = {}

    def consume(self, data: MetricsData, timestamp: float) -> None:
        rendered = self._renderer.render(data)
        with self._lock:
            self._rendered = rendered
            self._gzipped = {}

    @property
    def samples(self) -> int:
        """Return how many samples the latest exposition holds."""
        return self._rendered.samples

    @staticmethod
    def content_type(fmt: str) -> str:
        """Return the Content-Type of `fmt` ("text" or "openmetrics")."""
        return CONTENT_TYPES["openmetrics" if fmt == "openmetrics" else "text"]

    def render(self, fmt: str = "text", gzipped: bool = False) -> bytes:
        """Return the exposition of the latest collection ("text" or "openmetrics"), cached.

        The plain bytes were made by the tick; gzip is made by the first scrape that asks for it
        after a tick (once, shared by concurrent scrapes) and never holds up the next tick.
        """
        with self._lock:
            rendered, cache = self._rendered, self._gzipped
        plain = rendered.openmetrics if fmt == "openmetrics" else rendered.text
        if not gzipped:
            return plain
        body = cache.get(fmt)
        if body is None:
            with self._gzip_lock:
                body = cache.get(fmt)
                if body is None:
                    body = cache[fmt] = gzip.compress(plain, compresslevel=1)
        return body

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        """Nothing to release: the agent's HTTP server serves /metrics (see sinks._http)."""
