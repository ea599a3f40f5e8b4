"""The DaemonSet's probes and the image's HEALTHCHECK succeed with the Prometheus sink off."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import free_port
from tests.e2e.test_run_otlp_prometheus import get

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def agent_container() -> dict[str, Any]:
    for doc in yaml.safe_load_all((ROOT / "deploy/kubernetes/base/daemonset.yaml").read_text()):
        if doc and doc.get("kind") == "DaemonSet":
            containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
            return next(c for c in containers if "livenessProbe" in c)
    raise AssertionError("no DaemonSet with a liveness probe")


def healthcheck_argv() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r"HEALTHCHECK[^\n]*\\\n\s*CMD (\[.*\])", text)
    assert match is not None, "no exec-form HEALTHCHECK in the Dockerfile"
    argv: list[str] = json.loads(match.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def test_probes_and_healthcheck_pass_with_prometheus_disabled(tmp_path: Path) -> None:
    container = agent_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = [container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]]
    # The probes name the port the agent's one listener uses (prometheus.port), sink or no sink.
    assert {ports[p["port"]] for p in probes} == {9464}
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(
        SYSOPS_PROMETHEUS__ENABLED="false",
        SYSOPS_PROMETHEUS__PORT=str(port),
        SYSOPS_INTERVAL="0.5",
        SYSOPS_LOGS__ENABLED="false",
    )
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while get(f"http://127.0.0.1:{port}{probes[1]['path']}")[0] != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        for probe in probes:
            assert get(f"http://127.0.0.1:{port}{probe['path']}")[0] == 200, probe
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 0  # not served: the sink is off
        check = subprocess.run(healthcheck_argv(), env=env, capture_output=True, timeout=30, check=False)
        assert check.returncode == 0, check.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()
