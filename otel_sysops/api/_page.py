"""The page at /: static files shipped in the package, read on request (nothing held when no one looks)."""

from __future__ import annotations

from importlib.resources import files

from otel_sysops.http import Request, Response, error_response

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_FILES = ("index.html", "app.js", "style.css", "favicon.svg")


class PageHandler:
    """Serve the page's files; anything else under / is a JSON 404."""

    def __init__(self) -> None:
        self._root = files(__package__ or "otel_sysops.api") / "static"

    def __call__(self, request: Request) -> Response:
        if request.method != "GET":
            return Response(405, b'{"error":"the page is read-only: GET"}', headers={"Allow": "GET"})
        name = request.path.lstrip("/") or "index.html"
        if name not in _FILES:
            return error_response(404, f"not found: {request.path} (the page is at /, the API at /api/v1/)")
        body = (self._root / name).read_bytes()
        suffix = name[name.rfind(".") :]
        headers = {
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'",
        }
        return Response(200, body, _TYPES[suffix], headers)
