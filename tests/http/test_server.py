"""The agent's HTTP server through a real client: routing, bounded bodies, streams, failures."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from otel_sysops.errors import SysopsError
from otel_sysops.http import MAX_BODY, HttpServer, Request, Response, json_response


def _text(body: str) -> Response:
    return Response(200, body.encode(), "text/plain")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer("127.0.0.1", 0)
    srv.start()
    yield srv
    srv.close(2.0)


def _get(srv: HttpServer, path: str, method: str = "GET", body: bytes | None = None) -> tuple[int, bytes]:
    address = srv.address
    assert address is not None
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def test_longest_prefix_wins_and_exact_paths_match_exactly(server: HttpServer) -> None:
    server.mount("/", lambda r: _text("root " + r.path))
    server.mount("/api/v1/", lambda r: _text("api " + r.path))
    server.mount("/api/v1/alerts/", lambda r: _text("alerts " + r.path))
    server.mount("/metrics", lambda r: _text("metrics"))
    assert _get(server, "/api/v1/status") == (200, b"api /api/v1/status")
    assert _get(server, "/api/v1/alerts/history?x=1") == (200, b"alerts /api/v1/alerts/history")
    assert _get(server, "/metrics") == (200, b"metrics")
    assert _get(server, "/metrics/extra") == (200, b"root /metrics/extra")


def test_unmounted_path_is_404_json_naming_what_is_served(server: HttpServer) -> None:
    server.mount("/metrics", lambda r: _text("m"))
    status, body = _get(server, "/nope")
    assert status == 404
    assert "/metrics" in json.loads(body)["error"]


def test_request_carries_method_query_headers_and_body(server: HttpServer) -> None:
    seen: list[Request] = []

    def echo(request: Request) -> Response:
        seen.append(request)
        return json_response(201, {"ok": True})

    server.mount("/api/v1/", echo)
    status, body = _get(server, "/api/v1/silences?a=1&a=2&b=", method="POST", body=b'{"x": 1}')
    assert status == 201
    assert json.loads(body) == {"ok": True}
    request = seen[0]
    assert request.method == "POST"
    assert request.query == {"a": ["1", "2"], "b": [""]}
    assert request.body == b'{"x": 1}'
    assert request.headers["content-length"] == "8"
    assert request.client == "127.0.0.1"


def test_head_sends_headers_without_body(server: HttpServer) -> None:
    server.mount("/healthz", lambda r: _text("ok\n"))
    address = server.address
    assert address is not None
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request("HEAD", "/healthz")
    reply = conn.getresponse()
    assert reply.status == 200
    assert reply.getheader("Content-Length") == "3"
    assert reply.read() == b""
    conn.close()


def test_keep_alive_serves_several_requests_on_one_connection(server: HttpServer) -> None:
    server.mount("/metrics", lambda r: _text("m"))
    address = server.address
    assert address is not None
    conn = http.client.HTTPConnection(*address, timeout=10)
    for _ in range(3):
        conn.request("GET", "/metrics")
        reply = conn.getresponse()
        assert reply.read() == b"m"
    conn.close()


def test_a_body_over_the_limit_is_refused_unread(server: HttpServer) -> None:
    server.mount("/api/v1/", lambda r: _text("read"))
    address = server.address
    assert address is not None
    with socket.create_connection(address, timeout=10) as sock:
        # Only the headers are sent: the server must answer without waiting for the body.
        sock.sendall(f"POST /api/v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert "error" in json.loads(body)


def test_a_failing_handler_is_a_500_json_and_one_log_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    server.mount("/api/v1/", broken)
    with caplog.at_level(logging.ERROR, logger="otel_sysops.http._server"):
        status, body = _get(server, "/api/v1/status")
    assert status == 500
    assert json.loads(body) == {"error": "internal error (logged by the agent)"}
    assert [r.getMessage() for r in caplog.records] == ["http handler for GET /api/v1/status failed"]
    assert server.errors == 1


def test_a_stream_is_flushed_chunk_by_chunk(server: HttpServer) -> None:
    release = threading.Event()

    def events(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"data: first\n\n"
            release.wait(10)
            yield b"data: second\n\n"

        return Response(200, chunks(), "text/event-stream")

    server.mount("/api/v1/events", events)
    address = server.address
    assert address is not None
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"data: first" not in received:  # arrives before the generator is released
            chunk = sock.recv(4096)
            assert chunk
            received += chunk
        assert b"second" not in received
        release.set()
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    assert b"data: second" in received


def test_close_ends_open_streams_and_frees_the_port() -> None:
    srv = HttpServer("127.0.0.1", 0)
    srv.start()
    started = threading.Event()

    def forever(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            started.set()
            while not srv.closing.wait(0.05):
                yield b": keep-alive\n\n"

        return Response(200, chunks(), "text/event-stream")

    srv.mount("/api/v1/events", forever)
    address = srv.address
    assert address is not None
    sock = socket.create_connection(address, timeout=10)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert started.wait(10)
    srv.close(2.0)
    while sock.recv(4096):  # the server ends the stream: EOF, not a hang
        pass
    sock.close()
    again = HttpServer(*address)
    again.start()
    again.close(1.0)


def test_a_client_that_disconnects_mid_response_is_one_debug_line(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    big = b"x" * (8 << 20)
    server.mount("/metrics", lambda r: Response(200, big, "text/plain"))
    address = server.address
    assert address is not None
    with caplog.at_level(logging.DEBUG, logger="otel_sysops.http._server"):
        sock = socket.create_connection(address, timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1024)
        sock.close()  # RST with linger 0
        # The server notices on its next write; wait on that state, not on time.
        deadline_ok = _wait(lambda: server.disconnects >= 1)
    assert deadline_ok
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("otel_sysops")
    ]
    assert any("went away" in r.getMessage() for r in caplog.records)


def _wait(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        done.wait(0.02)
    return False


def test_a_port_in_use_is_one_error_naming_the_address(server: HttpServer) -> None:
    address = server.address
    assert address is not None
    with pytest.raises(SysopsError, match=rf"127\.0\.0\.1:{address[1]}: cannot listen"):
        HttpServer(*address).start()


def test_remount_while_serving_replaces_the_handler(server: HttpServer) -> None:
    server.mount("/metrics", lambda r: _text("old"))
    assert _get(server, "/metrics")[1] == b"old"
    server.mount("/metrics", lambda r: _text("new"))
    assert _get(server, "/metrics")[1] == b"new"
    server.unmount("/metrics")
    assert _get(server, "/metrics")[0] == 404
