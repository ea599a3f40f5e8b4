"""The hub's web UI in a real headless Chromium: the fleet table with data, the alert raised in the
test, a host page with charts (from an agent-style series endpoint); screenshots in test-artifacts/."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.bridge.conftest import NatsServer
from tests.hub.conftest import RunningHub, alert_doc, heartbeat, nats_portal, wait_for
from tests.hub.test_api import _inventory, _publish

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hub"


def chromium() -> str:
    from tests.conftest import need

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    need(found is not None, "chromium is not installed")
    assert found is not None
    return found


class _Series(BaseHTTPRequestHandler):
    """An agent's /api/v1/series answering with a ramp (the hub's chart source without Prometheus)."""

    def do_GET(self) -> None:
        if not self.path.startswith("/agents/web-1/api/v1/series?metric=system."):
            self.send_error(404)
            return
        now = time.time()
        body = json.dumps(
            {"series": [{"attributes": {}, "points": [[now - 600 + 10 * i, i / 60] for i in range(60)]}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def agent_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Series)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _browse(url: str, shot: Path) -> str:
    """Load `url` in headless Chromium; save a screenshot; return the DOM after scripts ran.

    The page is loaded with ?live=0: an open event stream keeps Chromium's virtual time from ending.
    """
    shot.parent.mkdir(parents=True, exist_ok=True)
    common = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=8000",
        "--window-size=1280,900",
        f"--user-data-dir={shot.parent / 'profile'}",
    ]
    subprocess.run([*common, f"--screenshot={shot}", url], check=True, capture_output=True, timeout=90)
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, timeout=90)
    return dom.stdout.decode()


def test_fleet_table_alert_and_host_page_in_chromium(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub], agent_api: str
) -> None:
    hub = start_hub(
        nats_server.url,
        agent_url_template=agent_api + "/agents/{host}",
        grafana_url_template="https://grafana.example.net/d/sysops-host?var-host={host}",
    )
    with nats_portal() as portal:
        portal.call(
            _publish,
            nats_server.url,
            [(f"sysops.web-{i}.heartbeat", heartbeat(f"web-{i}", 600.0, 40 + i)) for i in range(5)]
            + [("sysops.web-1.inventory", _inventory("web-1", 1500))],
        )
        raised = alert_doc(7, "web-3", severity="critical") | {"rule": "disk_full_in_test"}
        portal.call(_publish, nats_server.url, [("sysops.web-3.alerts", json.dumps(raised).encode())], True)
    wait_for(lambda: hub.get("/api/v1/alerts")["total"] == 1, 30, "the alert")
    wait_for(lambda: hub.get("/api/v1/hosts")["total"] == 5, 30, "five hosts")

    dom = _browse(hub.url + "/?live=0", ARTIFACTS / "fleet.png")
    assert 'id="fleet"' in dom
    for i in range(5):
        assert f'data-host="web-{i}"' in dom
    assert "disk_full_in_test" in dom
    assert "42 %" in dom  # web-2's CPU from its heartbeat summary
    assert (ARTIFACTS / "fleet.png").stat().st_size > 10_000

    page = _browse(hub.url + "/?live=0#/host/web-1", ARTIFACTS / "host.png")
    assert 'id="charts"' in page
    assert "<polyline" in page  # the charts drew the agent's series
    assert "grafana.example.net/d/sysops-host?var-host=web-1" in page
    assert "first inventory" in page

    alerts = _browse(hub.url + "/?live=0#/alerts", ARTIFACTS / "alerts.png")
    assert 'id="history"' in alerts
    assert "disk_full_in_test" in alerts
