"""The agent's routes that exist whatever sinks run: /healthz and /readyz."""

from __future__ import annotations

from collections.abc import Callable

from otel_sysops.health import Health
from otel_sysops.http import Handler, Request, Response

_TEXT = "text/plain; charset=utf-8"


def health_handler(health: Callable[[], Health], ready: bool) -> Handler:
    """Return the /healthz (liveness) or, with `ready`, the /readyz handler: 200 or 503 and one line."""

    def serve(request: Request) -> Response:
        if request.method != "GET":
            return Response(405, b"method not allowed\n", _TEXT, {"Allow": "GET, HEAD"})
        state = health()
        ok = state.ready if ready else state.alive
        return Response(200 if ok else 503, (state.detail + "\n").encode(), _TEXT)

    return serve
