"""One small threaded HTTP/1.1 server: handlers mounted by path, bounded bodies, no tracebacks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_sysops.errors import SysopsError

_log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
"""Largest request body read; a larger one is answered 413 without reading it."""

MAX_CONNECTIONS = 64
"""Connections served at once; past that a new one gets 503 (bounds threads and memory)."""

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed request, as a handler sees it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    client: str


@dataclass(slots=True)
class Response:
    """What a handler returns; an iterable body is streamed chunk by chunk."""

    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    """Return `payload` as a JSON response."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    return Response(status, body, "application/json", headers or {})


def error_response(status: int, message: str) -> Response:
    """Return the JSON error body every handler uses: {"error": message}."""
    return json_response(status, {"error": message})


class _Routes:
    """Prefix table: exact paths, subtrees ending in "/", and "/" as the fallback."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, Handler] = {}

    def mount(self, prefix: str, handler: Handler) -> None:
        if not prefix.startswith("/"):
            raise ValueError(f"mount prefix must start with '/': {prefix!r}")
        with self._lock:
            self._table = {**self._table, prefix: handler}

    def unmount(self, prefix: str) -> None:
        with self._lock:
            self._table = {k: v for k, v in self._table.items() if k != prefix}

    def prefixes(self) -> list[str]:
        return sorted(self._table)

    def find(self, path: str) -> Handler | None:
        table = self._table  # replaced whole on change: a lock-free read is consistent
        exact = table.get(path)
        if exact is not None:
            return exact
        best: str | None = None
        for prefix in table:
            if prefix.endswith("/") and path.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return table[best] if best is not None else None


class _Listener(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], owner: HttpServer) -> None:
        self.owner = owner
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _RequestHandler)


class HttpServer:
    """Serve mounted handlers on one listener; thread per connection, at most MAX_CONNECTIONS."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._routes = _Routes()
        self._listener: _Listener | None = None
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        self.closing = threading.Event()
        """Set by close(): a streaming body should end when it sees it."""
        self.disconnects = 0
        self.errors = 0
        self.refused = 0

    # -- routes ------------------------------------------------------------------------------

    def mount(self, prefix: str, handler: Handler) -> None:
        """Serve `handler` at `prefix` (exact, or a subtree when it ends in "/"); replaces any."""
        self._routes.mount(prefix, handler)

    def unmount(self, prefix: str) -> None:
        """Stop serving `prefix` (a no-op when nothing is mounted there)."""
        self._routes.unmount(prefix)

    def mounted(self) -> list[str]:
        """Return the mounted prefixes, sorted."""
        return self._routes.prefixes()

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int] | None:
        """Return the bound (host, port), or None before start()."""
        if self._listener is None:
            return None
        bound = self._listener.server_address
        return str(bound[0]), int(bound[1])

    def start(self) -> tuple[str, int]:
        """Bind and serve on a daemon thread; return the bound address."""
        if self._listener is not None:
            raise SysopsError("http server already started")
        try:
            listener = _Listener((self.host, self.port), self)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise SysopsError(f"http listener {self.host}:{self.port}: cannot listen ({reason})") from exc
        self._listener = listener
        self.closing.clear()
        self._thread = threading.Thread(target=listener.serve_forever, name="sysops-http", daemon=True)
        self._thread.start()
        bound = self.address
        assert bound is not None
        _log.info("serving HTTP on %s:%d", bound[0], bound[1])
        return bound

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end open connections (streams included), release the port."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self.closing.set()
        done = threading.Event()

        def stop() -> None:
            listener.shutdown()
            done.set()

        threading.Thread(target=stop, name="sysops-http-stop", daemon=True).start()
        done.wait(max(0.1, timeout))
        with self._active_lock:
            active = list(self._active)
        for sock in active:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                _log.debug("http: connection already closed at shutdown")
        listener.server_close()
        if self._thread is not None:
            self._thread.join(max(0.1, timeout))
            self._thread = None

    # -- used by the request handler -----------------------------------------------------------

    def _enter(self, sock: socket.socket) -> bool:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            return False
        with self._active_lock:
            self._active.add(sock)
        return True

    def _leave(self, sock: socket.socket) -> None:
        with self._active_lock:
            self._active.discard(sock)
        self._slots.release()

    def _dispatch(self, request: Request) -> Response:
        handler = self._routes.find(request.path)
        if handler is None:
            known = ", ".join(p for p in self._routes.prefixes() if p != "/")
            return error_response(404, f"not found: {request.path} (served: {known})")
        try:
            return handler(request)
        except Exception:  # noqa: BLE001 (a handler bug must not reach the client as a traceback)
            self.errors += 1
            _log.exception("http handler for %s %s failed", request.method, request.path)
            return error_response(500, "internal error (logged by the agent)")


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Listener
    protocol_version = "HTTP/1.1"
    server_version = "otel-sysops"
    timeout = 30  # an idle keep-alive connection is closed after this many seconds

    def setup(self) -> None:
        super().setup()
        self._admitted = self.server.owner._enter(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except _DISCONNECTS:
            self.server.owner.disconnects += 1
        finally:
            if self._admitted:
                self.server.owner._leave(self.connection)

    def handle(self) -> None:
        if not self._admitted:
            # Nothing was parsed yet: answer and close without reading the request.
            self.request_version, self.requestline, self.command = "HTTP/1.1", "", ""
            self.close_connection = True
            try:
                self._send_simple(503, error_response(503, "too many connections"))
            except _DISCONNECTS:
                self.server.owner.disconnects += 1
            return
        try:
            super().handle()
        except _DISCONNECTS as exc:
            self.server.owner.disconnects += 1
            _log.debug("http client %s went away: %s", self.client_address[0], type(exc).__name__)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _DISCONNECTS as exc:
            self.close_connection = True
            self.server.owner.disconnects += 1
            _log.debug("http client %s went away: %s", self.client_address[0], type(exc).__name__)

    # Every method goes through one dispatcher.
    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _serve(self, head: bool = False) -> None:
        owner = self.server.owner
        split = urllib.parse.urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send_simple(400, error_response(400, "bad Content-Length"))
            return
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._send_simple(413, error_response(413, f"request body over {MAX_BODY} bytes"))
            return
        body = self.rfile.read(length) if length else b""
        request = Request(
            method="GET" if head else self.command,
            path=urllib.parse.unquote(split.path) or "/",
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client=str(self.client_address[0]),
        )
        response = owner._dispatch(request)
        if isinstance(response.body, bytes | bytearray):
            self._send_simple(response.status, response, head=head)
        else:
            self._stream(response, head=head)

    def _headers(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)

    def _send_simple(self, status: int, response: Response, head: bool = False) -> None:
        body = bytes(response.body) if isinstance(response.body, bytes | bytearray) else b""
        response = Response(status, body, response.content_type, response.headers)
        self._headers(response)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _stream(self, response: Response, head: bool) -> None:
        # No length is known: the stream ends with the connection.
        self.close_connection = True
        self._headers(response)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        if head:
            return
        chunks: Iterator[bytes] = iter(response.body)  # type: ignore[arg-type]
        closing = self.server.owner.closing
        try:
            for chunk in chunks:
                if closing.is_set():
                    break
                if chunk:
                    self.wfile.write(chunk)
                    self.wfile.flush()
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("http %s %s", self.client_address[0], format % args)

    def log_error(self, format: str, *args: object) -> None:
        _log.debug("http error %s %s", self.client_address[0], format % args)
