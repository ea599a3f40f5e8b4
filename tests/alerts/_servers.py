"""Real local receivers for the channel tests: an HTTP server in a thread, a UDP syslog socket."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_sysops.alerts import Alert, AlertState, Notification, Severity


@dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """What the HTTP receiver answers and what it received."""

    url: str
    statuses: list[int] = field(default_factory=list)  # answered in order, then `default_status`
    default_status: int = 200
    response_body: bytes = b"{}"
    hang: float = 0.0  # seconds to sleep before answering
    requests: list[Request] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Request]:
        """Return the first `count` successful requests, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.01)
        with self.lock:
            return list(self.requests)


@contextmanager
def http_receiver(**kwargs: Any) -> Iterator[Receiver]:
    """Run an HTTP server on 127.0.0.1 in a thread; yield its Receiver."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else receiver.default_status
            if receiver.hang:
                receiver.stopping.wait(receiver.hang)
            if 200 <= status < 300:
                with receiver.lock:
                    receiver.requests.append(Request(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(receiver.response_body)))
            self.end_headers()
            self.wfile.write(receiver.response_body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # A client that gave up (the timeout tests) closes the connection under a hung handler.
            return

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}", **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stopping.set()
        server.shutdown()
        server.server_close()


@contextmanager
def udp_receiver() -> Iterator[tuple[socket.socket, int]]:
    """Yield a bound UDP socket on 127.0.0.1 and its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    try:
        yield sock, int(sock.getsockname()[1])
    finally:
        sock.close()


def make_alert(
    rule: str = "cpu.high",
    severity: Severity = Severity.WARNING,
    state: AlertState = "firing",
    host: str = "web-1",
    message: str = "CPU above 90%",
    **kwargs: Any,
) -> Alert:
    """Return an alert for channel tests."""
    return Alert(
        id=kwargs.pop("id", f"id-{rule}"),
        fingerprint=kwargs.pop("fingerprint", f"fp-{rule}"),
        rule=rule,
        metric=kwargs.pop("metric", "system.cpu.utilization"),
        attributes=kwargs.pop("attributes", {"cpu.mode": "user"}),
        severity=severity,
        state=state,
        starts_at=kwargs.pop("starts_at", 1_700_000_000.0),
        message=message,
        host=host,
        **kwargs,
    )


def notification(*alerts: Alert, suppressed: dict[str, int] | None = None) -> Notification:
    """Return a notification of these alerts."""
    return Notification(list(alerts), suppressed or {})
