"""Serve the latest collection on /metrics, rendered once per tick: a scrape never collects."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.sdk.metrics.export import MetricsData

from otel_sysops.errors import SysopsError

from ._exposition import ExpositionRenderer, Rendered

_log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "text": "text/plain; version=0.0.4; charset=utf-8",
    "openmetrics": "application/openmetrics-text; version=1.0.0; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz and /readyz report."""

    alive: bool
    ready: bool
    detail: str


class PrometheusSink:
    """Render each collection once (text and OpenMetrics) and hand scrapes the cached bytes."""

    name = "prometheus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gzip_lock = threading.Lock()
        self._renderer = ExpositionRenderer()
        self._rendered = Rendered(b"", b"# EOF\n", 0)
        self._gzipped: dict[str, bytes] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.health: Callable[[], Health] = lambda: Health(True, True, "ok")

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

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP listener on a daemon thread; return the bound address."""
        try:
            server = _Server((host, port), _handler_for(self))
        except OSError as exc:
            raise SysopsError(f"prometheus endpoint {host}:{port}: cannot listen ({exc.strerror})") from exc
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="sysops-prometheus", daemon=True)
        self._thread.start()
        bound = server.server_address
        _log.info("serving Prometheus metrics on http://%s:%d/metrics", bound[0], bound[1])
        return str(bound[0]), int(bound[1])

    def close(self, timeout: float) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: 50 concurrent scrapers would wait for SYN retries (1 s).
    request_queue_size = 128


def _handler_for(sink: PrometheusSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "otel-sysops"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                accept = self.headers.get("Accept", "")
                openmetrics = "application/openmetrics-text" in accept
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                fmt = "openmetrics" if openmetrics else "text"
                body = sink.render(fmt, gzipped)
                ctype = sink.content_type(fmt)
                self._reply(200, body, ctype, gzipped)
            elif path in ("/healthz", "/readyz"):
                health = sink.health()
                ok = health.alive if path == "/healthz" else health.ready
                self._reply(200 if ok else 503, (health.detail + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._reply(
                    404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8"
                )

        def _reply(self, code: int, body: bytes, ctype: str, gzipped: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            _log.debug("http %s", format % args)

    return Handler
