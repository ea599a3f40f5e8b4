"""The fleet reference layout's Prometheus configuration is valid to promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import need_binary

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_prometheus_config_passes_promtool() -> None:
    promtool = need_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(ROOT / "deploy" / "fleet" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
