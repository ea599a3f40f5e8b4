"""The agent's HTTP server: handlers mounted by path (/metrics, /healthz, /readyz, /api/v1/, /)."""

from ._server import (
    MAX_BODY,
    MAX_CONNECTIONS,
    Handler,
    HttpServer,
    Request,
    Response,
    error_response,
    json_response,
)

__all__ = [
    "MAX_BODY",
    "MAX_CONNECTIONS",
    "Handler",
    "HttpServer",
    "Request",
    "Response",
    "error_response",
    "json_response",
]
