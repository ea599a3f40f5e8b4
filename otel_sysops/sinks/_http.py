"""The /metrics handler: the Prometheus sink's cached exposition, negotiated by Accept and Accept-Encoding."""

from __future__ import annotations

from typing import Protocol

from otel_sysops.http import Handler, Request, Response

from ._prometheus import CONTENT_TYPES


class Renderer(Protocol):
    """What the handler needs of the sink: cached bytes per format (`PrometheusSink.render`)."""

    def render(self, fmt: str = "text", gzipped: bool = False) -> bytes:
        """Return the exposition of the latest collection ("text" or "openmetrics")."""


def metrics_handler(sink: Renderer) -> Handler:
    """Return a handler serving `sink`'s exposition: OpenMetrics when asked for, gzip when accepted."""

    def serve(request: Request) -> Response:
        if request.method != "GET":
            return Response(405, b"method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})
        openmetrics = "application/openmetrics-text" in request.headers.get("accept", "")
        gzipped = "gzip" in request.headers.get("accept-encoding", "")
        body = sink.render("openmetrics" if openmetrics else "text", gzipped)
        ctype = CONTENT_TYPES["openmetrics" if openmetrics else "text"]
        return Response(200, body, ctype, {"Content-Encoding": "gzip"} if gzipped else {})

    return serve
