"""Serve the latest collection on /metrics, rendered once per tick: a scrape never collects."""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.exporter.prometheus import _CustomCollector
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE_OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as _render_openmetrics

from otel_sysops.errors import SysopsError

from ._exposition import TextRenderer

_log = logging.getLogger(__name__)


class _Families:
    """A prometheus_client collector that yields a fixed list of families."""

    def __init__(self, families: list[PromMetric]) -> None:
        self._families = families

    def collect(self) -> Iterable[PromMetric]:
        return iter(self._families)


def _one_family_per_name(families: Iterable[PromMetric]) -> list[PromMetric]:
    """Merge families of the same name and type: two collectors may export one semantic-convention
    metric (hw.temperature from hwmon and from disks) with different descriptions, and a second
    HELP/TYPE line for a name makes the whole scrape unparsable. Each sample keeps its own labels."""
    first: dict[tuple[str, str], PromMetric] = {}
    out: list[PromMetric] = []
    for family in families:
        seen = first.get((family.name, family.type))
        if seen is None:
            first[(family.name, family.type)] = family
            out.append(family)
        else:
            seen.samples.extend(family.samples)
    return out


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz and /readyz report."""

    alive: bool
    ready: bool
    detail: str


class PrometheusSink:
    """Translate each collection with the OTel exporter's rules and cache the exposition bytes."""

    name = "prometheus"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[PromMetric] = []
        self._rendered: dict[str, bytes] = {}
        self._renderer = TextRenderer()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.health: Callable[[], Health] = lambda: Health(True, True, "ok")

    def consume(self, data: MetricsData, timestamp: float) -> None:
        # The exporter's collector holds the standard OTel -> Prometheus translation (units, _total,
        # target_info); we feed it one collection and keep the families it yields.
        # Scope labels (otel_scope_*) on every series would only add cardinality: one scope per metric here.
        translator = _CustomCollector(disable_target_info=False, scope_info_enabled=False)
        translator.add_metrics_data(data)
        families = _one_family_per_name(translator.collect())
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

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP listener on a daemon thread; return the bound address."""
        try:
            server = ThreadingHTTPServer((host, port), _handler_for(self))
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


def _handler_for(sink: PrometheusSink) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "otel-sysops"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                accept = self.headers.get("Accept", "")
                openmetrics = "application/openmetrics-text" in accept
                gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
                body = sink.render("openmetrics" if openmetrics else "text", gzipped)
                ctype = CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_PLAIN_0_0_4
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
