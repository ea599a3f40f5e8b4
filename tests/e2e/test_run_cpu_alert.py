"""Issue 5's Done-when with the real analyzers: `otel-sysops run` with a low CPU threshold delivers a
firing alert to a webhook (a local HTTP listener), then a resolved one when the load stops."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


class Listener:
    """Collect the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                body = self.bodies.get(timeout=0.1)
            except queue.Empty:
                continue
            for alert in body["alerts"]:
                if alert["metric"] == "sysops.cpu.busy" and alert["state"] == state:
                    return alert
        pytest.fail(f"no {state} CPU alert within {timeout}s")


def test_run_with_a_low_cpu_threshold_fires_then_resolves_on_a_webhook(tmp_path: Path) -> None:
    listener = Listener()
    config = tmp_path / "agent.toml"
    config.write_text(
        "interval = 0.5\n"
        "[prometheus]\nenabled = false\n"
        "[alerts]\ngroup_window = 0.1\n"
        "[[alerts.channels]]\n"
        f'type = "webhook"\nname = "ops"\nurl = "{listener.url}"\nallow_insecure = true\n'
        # One core of two busy is 50 %: fire at 30 %, clear under 25 %.
        "[[analyzers.thresholds]]\n"
        'metric = "sysops.cpu.busy"\nwarning = 0.30\ncritical = 0.97\nhysteresis = 0.05\nfor = 0\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env["SYSOPS_CONFIG"] = str(config)
    agent = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "agent.log").open("w"),
    )
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        fired = listener.wait_for("firing")
        assert fired["severity"] == "warning"
        assert fired["rule"].startswith("threshold")
        assert fired["threshold"] == pytest.approx(0.30)
        assert fired["value"] >= 0.30
        burner.kill()
        burner.wait()
        resolved = listener.wait_for("resolved")
        assert resolved["id"] == fired["id"]
        assert resolved["ends_at"] is not None
    finally:
        if burner.poll() is None:
            burner.kill()
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=20)
        listener.server.shutdown()
    assert code == 0, (tmp_path / "agent.log").read_text()
