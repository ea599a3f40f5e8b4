"""`otel-sysops run` with the real analyzers and a CPU threshold delivers a firing alert to a webhook
(a local HTTP listener), then a resolved one when the load stops.

The load is injected, not made: the agent reads a frozen /proc tree whose `stat` the test advances
(90 % busy, then idle), so whatever else runs on the machine, the agent sees exactly that."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, free_port

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
                assert isinstance(alert, dict), body
                if alert["metric"] == "sysops.cpu.busy" and alert["state"] == state:
                    return alert
        pytest.fail(f"no {state} CPU alert within {timeout}s")


class ProcStatWriter:
    """Advance `proc/stat`'s total line every 50 ms: `busy` of each 100 ticks are user time, the rest
    idle. The file is replaced whole (rename), so a reader never sees half of it."""

    def __init__(self, stat: Path) -> None:
        self.stat = stat
        self.lines = stat.read_text().splitlines()
        self.user, self.idle = 9100, 65100
        self.busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.user += self.busy
            self.idle += 100 - self.busy
            lines = [f"cpu  {self.user} 35 3300 {self.idle} 325 125 190 72 0 0", *self.lines[1:]]
            tmp = self.stat.with_suffix(".tmp")
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, self.stat)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def test_run_with_a_cpu_threshold_fires_then_resolves_on_a_webhook(tmp_path: Path) -> None:
    listener = Listener()
    host = tmp_path / "host"
    shutil.copytree(FIXTURES / "numa2-edac", host, ignore=shutil.ignore_patterns("tick2"))
    writer = ProcStatWriter(host / "proc" / "stat")
    config = tmp_path / "agent.toml"
    config.write_text(
        "interval = 0.5\n"
        f'procfs = "{host / "proc"}"\nsysfs = "{host / "sys"}"\nhost_root = "{host}"\n'
        f"[prometheus]\nenabled = false\nport = {free_port()}\n"
        '[instrumentation]\nenabled = ["cpu"]\n'
        "[logs]\nenabled = false\n"
        "[alerts]\ngroup_window = 0.1\n"
        "[[alerts.channels]]\n"
        f'type = "webhook"\nname = "ops"\nurl = "{listener.url}"\nallow_insecure = true\n'
        # 90 % busy fires at 30 %; idle clears under 25 %.
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
    try:
        writer.busy = 90
        fired = listener.wait_for("firing")
        assert fired["severity"] == "warning"
        assert fired["rule"].startswith("threshold")
        assert fired["threshold"] == pytest.approx(0.30)
        assert fired["value"] == pytest.approx(0.90)
        writer.busy = 0
        resolved = listener.wait_for("resolved")
        assert resolved["id"] == fired["id"]
        assert resolved["ends_at"] is not None
    finally:
        writer.stop()
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=60)
        listener.server.shutdown()
    assert code == 0, (tmp_path / "agent.log").read_text()
