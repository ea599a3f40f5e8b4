"""The hub on a real nats-server: started in a background event loop so tests talk to it over HTTP."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer, nats_server, nats_server_binary  # noqa: F401 - fixtures
from tests.conftest import free_port, need

pytest.importorskip("starlette", reason="the hub extra is not installed")

ADMIN_KEY = "osh_test_admin-key-for-the-tests-only"


class RunningHub:
    """One hub process-in-a-thread; stop() cancels it as SIGTERM would."""

    def __init__(self, settings: Settings) -> None:
        from otel_sysops.hub import Hub

        self.settings = settings
        self._cm = start_blocking_portal(backend="asyncio")
        self.portal: BlockingPortal = self._cm.__enter__()
        self.hub = Hub(settings)
        self.future: Future[Any]
        self.future, address = self.portal.start_task(self.hub.run)
        self.url = f"http://{address[0]}:{address[1]}"
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.client.close()
        self.portal.call(self._cancel)
        with contextlib.suppress(BaseException):  # cancelled is how it ends
            self.future.result(timeout=15)
        self._cm.__exit__(None, None, None)
        self.hub.store.close()

    async def _cancel(self) -> None:
        self.future.cancel()


def hub_settings(make_settings: Callable[..., Settings], url: str, db: Path, **hub: Any) -> Settings:
    return make_settings(
        hostname="hub-1",
        nats={"url": url, "reconnect_wait": 0.1},
        alerts={"channels": [{"type": "log", "min_severity": "info"}]},
        hub={
            "port": free_port(),
            "database": str(db),
            "admin_key": ADMIN_KEY,
            "check_interval": 0.2,
            "rate_limit": 10_000,
            "rate_burst": 10_000,
            **hub,
        },
    )


@pytest.fixture
def start_hub(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Callable[..., RunningHub]]:
    """Start hubs (stopped after the test); `start_hub(nats_url, **hub_settings)`."""
    hubs: list[RunningHub] = []

    def start(url: str, db: Path | None = None, **hub: Any) -> RunningHub:
        running = RunningHub(hub_settings(make_settings, url, db or tmp_path / "hub.db", **hub))
        hubs.append(running)
        return running

    yield start
    for running in hubs:
        if running.future.done() is False:
            running.stop()


def heartbeat(host: str, interval: float, i: int = 0) -> bytes:
    """A heartbeat as an agent sends it (docs/schemas/heartbeat.json), with the summary."""
    now = time.time()
    return json.dumps(
        {
            "schema_version": 1,
            "host": host,
            "time": now,
            "interval": interval,
            "agent": {"version": "0.1.0", "pid": 1000 + i, "started_at": now - 60, "uptime_s": 60.0},
            "tick_interval": 10.0,
            "ticks": 6,
            "last_tick": now,
            "health": {"alive": True, "ready": True, "detail": {}},
            "collectors": {"cpu": {"status": "ok", "error": None}},
            "errors": [],
            "bridge": {"connected": True},
            "summary": {"cpu": (i % 100) / 100, "memory": 0.5, "disk": 0.25},
        }
    ).encode()


def alert_doc(i: int, host: str, *, state: str = "firing", severity: str = "warning") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "id": f"alert-{host}-{i}",
        "fingerprint": f"fp-{host}-{i}",
        "rule": "cpu_high",
        "metric": "system.cpu.utilization",
        "attributes": {},
        "severity": severity,
        "state": state,
        "starts_at": 1_700_000_000.0 + i,
        "ends_at": None if state == "firing" else 1_700_000_100.0 + i,
        "value": 0.95,
        "threshold": 0.9,
        "message": f"alert {i} on {host}",
        "host": host,
        "labels": {},
    }


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


@contextmanager
def nats_portal() -> Iterator[BlockingPortal]:
    """A background event loop for NATS clients the test drives (simulated agents)."""
    with start_blocking_portal(backend="asyncio") as portal:
        try:
            yield portal
        finally:
            # Cancel what still runs there (the simulated agents' loops).
            portal.call(portal.stop, True)


class GetServer:
    """An HTTP server on 127.0.0.1 in a thread answering every GET with `answer()`: (body, type)."""

    def __init__(self, answer: Callable[[], tuple[bytes, str]]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, content_type = answer()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


__all__ = ["NatsServer", "free_port", "nats_server_binary", "need"]
