"""The CLI as users run it: snapshot output, JSON logs, SIGHUP reload keeping a good configuration."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import clean_env, free_port
from tests.e2e.test_run_otlp_prometheus import get

pytestmark = pytest.mark.slow


def test_snapshot_json_has_the_documented_shape() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "snapshot", "--json", "--delay", "0.2"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    doc = json.loads(out.stdout)
    assert doc["resource"]["service.name"] == "otel-sysops"
    by_name = {m["name"]: m for m in doc["metrics"]}
    cpu = by_name["system.cpu.utilization"]
    assert cpu["unit"] == "1"
    assert cpu["type"] == "gauge"
    assert {"attributes", "value"} == set(cpu["points"][0])
    assert by_name["system.cpu.time"]["type"] == "counter"
    assert by_name["system.memory.usage"]["type"] == "updowncounter"
    table = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "snapshot", "--delay", "0"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "system.memory.usage [By] (updowncounter, 4 points)" in table


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
        assert proc.poll() is None, "agent exited"
        assert time.monotonic() < deadline, "agent never became ready"
        time.sleep(0.1)


def test_sighup_reloads_and_a_bad_new_configuration_keeps_the_old(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "agent.toml"
    cfg.write_text(f'interval = 0.5\n[prometheus]\nport = {port}\n[log]\nformat = "json"\n')
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", "run", "--config", str(cfg)],
            env=clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_ready(port, proc)
        cfg.write_text("interval = 'fast'\n")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while "reload failed" not in log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200  # still serving the old configuration
        cfg.write_text(
            f'interval = 0.5\n[prometheus]\nport = {port}\n[instrumentation]\ndisabled = ["memory"]\n'
        )
        proc.send_signal(signal.SIGHUP)
        while "configuration reloaded" not in log.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        wait_ready(port, proc)
        # The first tick on the new configuration replaces the exposition: wait for that state.
        while "system_memory_usage" in (text := get(f"http://127.0.0.1:{port}/metrics")[1]):
            assert time.monotonic() < deadline, "the reloaded configuration never reached /metrics"
            time.sleep(0.1)
        assert "system_cpu_time_seconds_total" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    failed = [r for r in records if "reload failed" in r["message"]]
    assert failed
    assert failed[0]["level"] == "error"
    assert "interval" in failed[0]["message"]
    assert "Traceback" not in log.read_text()


def test_snapshot_says_on_stderr_which_collectors_were_skipped_and_why(tmp_path: Path) -> None:
    # A procfs holding only /proc/stat (the mark of a procfs root) and a sysfs holding only
    # devices/: the collectors needing the other files are skipped, each named with its reason.
    procfs, sysfs = tmp_path / "proc", tmp_path / "sys"
    procfs.mkdir()
    (sysfs / "devices").mkdir(parents=True)
    (procfs / "stat").write_text("cpu  1 0 1 100 0 0 0 0 0 0\ncpu0 1 0 1 100 0 0 0 0 0 0\n")
    out = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "snapshot", "--json", "--delay", "0"],
        env=clean_env(SYSOPS_PROCFS=str(procfs), SYSOPS_SYSFS=str(sysfs)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"collector disk skipped: {procfs / 'diskstats'} does not exist" in out.stderr.splitlines()
    assert not any(line.startswith("collector cpu skipped") for line in out.stderr.splitlines())
    json.loads(out.stdout)  # stdout stays the document alone


def test_run_serves_the_local_api_and_page_and_keeps_history_in_the_state_directory(tmp_path: Path) -> None:
    # `otel-sysops run` as installed: the API and the page share the /metrics listener, and the
    # alert history goes next to the rollups (the state directory), so it survives a restart.
    port = free_port()
    env = clean_env(
        SYSOPS_PROMETHEUS__PORT=str(port),
        SYSOPS_INTERVAL="1",
        SYSOPS_STORE__SQLITE_PATH=str(tmp_path / "rollups.db"),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_ready(port, proc)
        code, body = get(f"http://127.0.0.1:{port}/api/v1/status")
        assert code == 200
        status = json.loads(body)
        assert status["collectors"]["cpu"]["ok"] is True
        code, page = get(f"http://127.0.0.1:{port}/")
        assert code == 200
        assert "<title>otel-sysops</title>" in page
        code, _ = get(f"http://127.0.0.1:{port}/api/v1/alerts/history")
        assert code == 200
        assert (tmp_path / "alerts.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
