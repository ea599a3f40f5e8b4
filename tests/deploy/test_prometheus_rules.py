"""`otel-sysops rules` and deploy/prometheus/rules.yaml: Prometheus' promtool checks them, and its rule
unit tests feed series that fire, are held by hysteresis, and clear.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_sysops.cli import main
from otel_sysops.cli._rules import generate
from otel_sysops.rules import prometheus_metric_name
from otel_sysops.settings import load_settings
from tests.conftest import need_binary

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules.yaml"


def _settings(tmp_path: Path | None = None, toml: str = "") -> Any:
    config = None
    if tmp_path is not None:
        config = tmp_path / "config.toml"
        config.write_text(toml)
    return load_settings(config, {"prometheus": {"enabled": False}}, environ={})


def test_committed_rules_are_generated_from_the_default_thresholds() -> None:
    # Regenerate with: otel-sysops rules -o deploy/prometheus/rules.yaml
    assert RULES.read_text() == generate(_settings())


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rules = sum(len(group["rules"]) for group in yaml.safe_load(RULES.read_text())["groups"])
    assert rules > 20
    assert f"SUCCESS: {rules} rules found" in result.stdout


def _rule(name: str) -> dict[str, Any]:
    doc = yaml.safe_load(RULES.read_text())
    return next(r for g in doc["groups"] for r in g["rules"] if r.get("alert") == name)


def _expected(name: str, instance: str, value: str) -> dict[str, Any]:
    rule = _rule(name)
    annotations = {
        k: v.replace("{{ $labels.instance }}", instance).replace("{{ $value }}", value)
        for k, v in rule["annotations"].items()
    }
    return {
        "exp_labels": {**rule["labels"], "instance": instance, "job": "sysops"},
        "exp_annotations": annotations,
    }


def _promtool_test(tmp_path: Path, rules: Path, tests: list[dict[str, Any]]) -> None:
    promtool = need_binary("promtool")
    spec = tmp_path / "test.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": tests}, sort_keys=False
        )
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(spec)], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cpu_busy_fires_after_for_is_held_by_hysteresis_and_clears(tmp_path: Path) -> None:
    # 1-minute samples: 0.5 (t0-t2), 0.95 (t3-t13), 0.87 (t14-t17), 0.83 (t18-t21), 0.77 (t22-t25), 0.7.
    series = "0.5x2 0.95x10 0.87x3 0.83x3 0.77x3 0.7x3"
    labels = 'sysops_cpu_busy_ratio{instance="a",job="sysops"}'

    def at(minute: int, warning: str | None, critical: str | None) -> list[dict[str, Any]]:
        out = []
        for name, value in (("SysopsCpuBusyWarning", warning), ("SysopsCpuBusyCritical", critical)):
            alerts = [_expected(name, "a", value)] if value else []
            out.append({"eval_time": f"{minute}m", "alertname": name, "exp_alerts": alerts})
        return out

    _promtool_test(
        tmp_path,
        RULES,
        [
            {
                "interval": "1m",
                "input_series": [{"series": labels, "values": series}],
                "alert_rule_test": [
                    *at(2, None, None),  # below both levels
                    *at(6, None, None),  # above both, pending: `for` is 5 minutes
                    *at(10, "0.95", "0.95"),  # held 5 minutes: both fire
                    *at(15, "0.87", "0.87"),  # below critical 0.9 but within its hysteresis: still firing
                    *at(19, "0.83", None),  # past critical's clear level 0.85: critical resolves
                    *at(23, "0.77", None),  # below warning 0.8, within its hysteresis 0.75: still firing
                    *at(27, None, None),  # past 0.75: cleared
                ],
            }
        ],
    )


def test_a_user_rule_below_a_level_fires_and_clears(tmp_path: Path) -> None:
    # A rule from the settings file, with "<": free memory below 10 %, hysteresis 2 %.
    # 1-minute samples: 0.3 (t0-t2), 0.05 (t3-t5), 0.11 (t6-t8), 0.2 (t9-t11).
    settings = _settings(
        tmp_path,
        '[[analyzers.thresholds]]\nmetric = "system.memory.utilization"\n'
        'match = { "system.memory.state" = "free" }\n'
        'warning = 0.10\ncomparison = "<"\nhysteresis = 0.02\n',
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text(generate(settings))
    doc = yaml.safe_load(rules.read_text())
    rule = next(
        r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "SystemMemoryUtilizationFreeWarning"
    )
    assert "for" not in rule
    series = 'system_memory_utilization_ratio{instance="b",job="sysops",system_memory_state="free"}'

    def expect(value: str) -> dict[str, Any]:
        annotations = {
            k: v.replace("{{ $labels.instance }}", "b").replace("{{ $value }}", value)
            for k, v in rule["annotations"].items()
        }
        labels = {**rule["labels"], "instance": "b", "job": "sysops", "system_memory_state": "free"}
        return {"exp_labels": labels, "exp_annotations": annotations}

    name = "SystemMemoryUtilizationFreeWarning"
    _promtool_test(
        tmp_path,
        rules,
        [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "0.3x2 0.05x2 0.11x2 0.2x2"}],
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": name, "exp_alerts": []},
                    {"eval_time": "4m", "alertname": name, "exp_alerts": [expect("0.05")]},
                    # 0.11 is above 0.10 but below 0.12 (level + hysteresis): held.
                    {"eval_time": "7m", "alertname": name, "exp_alerts": [expect("0.11")]},
                    {"eval_time": "10m", "alertname": name, "exp_alerts": []},
                ],
            }
        ],
    )


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("system.cpu.utilization", "1", "gauge", "system_cpu_utilization_ratio"),
        ("system.cpu.time", "s", "counter", "system_cpu_time_seconds_total"),
        ("system.disk.io", "By", "counter", "system_disk_io_bytes_total"),
        ("system.memory.usage", "By", "updowncounter", "system_memory_usage_bytes"),
        ("system.paging.utilization", "1", "updowncounter", "system_paging_utilization"),
        ("system.network.packet.count", "{packet}", "counter", "system_network_packet_count_total"),
        ("hw.temperature", "Cel", "gauge", "hw_temperature_celsius"),
        ("http.server.request.duration", "s", "histogram", "http_server_request_duration_seconds"),
        ("process.runtime.gc.rate", "1/s", "gauge", "process_runtime_gc_rate_per_second"),
        ("sysops.ratio", "1", "gauge", "sysops_ratio"),
        ("sysops.errors.total", "", "churning counter", "sysops_errors_total"),
        ("queue..depth__now", "{item}", "gauge", "queue_depth_now"),
        ("3d.render", "ms", "gauge", "_3d_render_milliseconds"),
        ("transfer.bytes", "By", "counter", "transfer_bytes_total"),
    ],
)
def test_names_follow_the_go_translator(name: str, unit: str, kind: str, expected: str) -> None:
    assert prometheus_metric_name(name, unit, kind) == expected


def test_rules_command_prints_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rules.yaml"
    assert main(["rules", "-o", str(out)]) == 0
    assert out.read_text() == RULES.read_text()
