"""Settings: precedence, and one clear line naming the field for every kind of bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_sysops.errors import ConfigError
from otel_sysops.settings import load_settings


def test_defaults_need_no_configuration() -> None:
    s = load_settings(None, None, environ={})
    assert s.interval == 10.0
    assert (s.prometheus.enabled, s.prometheus.host, s.prometheus.port) == (True, "127.0.0.1", 9464)
    assert s.procfs == Path("/proc")
    assert s.sysfs == Path("/sys")
    assert s.host_root == Path("/")
    assert s.store.max_series == 5000
    assert s.store.raw_window == 3600
    assert s.store.rollup_window == 86400


def test_precedence_is_cli_then_environment_then_file_then_defaults(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('interval = 30\n[prometheus]\nport = 9001\nhost = "0.0.0.0"\n[log]\nformat = "json"\n')
    env = {"SYSOPS_PROMETHEUS__PORT": "9002", "SYSOPS_INTERVAL": "20"}
    s = load_settings(cfg, {"interval": 5}, environ=env)
    assert s.interval == 5  # CLI beats env and file
    assert s.prometheus.port == 9002  # env beats file
    assert s.prometheus.host == "0.0.0.0"  # file beats default
    assert s.log.format == "json"
    assert s.store.max_series == 5000  # default


def test_config_file_from_sysops_config_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("interval = 42\n")
    assert load_settings(None, None, environ={"SYSOPS_CONFIG": str(cfg)}).interval == 42


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SYSOPS_PROMETHEUS__PORT": "70000"},
            "SYSOPS_PROMETHEUS__PORT: Input should be less than or equal to 65535 (got '70000')",
        ),
        ({"SYSOPS_INTERVALL": "5"}, "SYSOPS_INTERVALL: unknown setting; accepted: SYSOPS_ALERTS"),
        (
            {"SYSOPS_PROMETHEUS__PROT": "1"},
            "SYSOPS_PROMETHEUS__PROT: unknown setting; accepted: SYSOPS_PROMETHEUS__ENABLED, "
            "SYSOPS_PROMETHEUS__HOST, SYSOPS_PROMETHEUS__PORT",
        ),
        ({"SYSOPS_LOG__FORMAT": "xml"}, "SYSOPS_LOG__FORMAT: Input should be 'text' or 'json' (got 'xml')"),
        ({"SYSOPS_INTERVAL": "0"}, "SYSOPS_INTERVAL: Input should be greater than or equal to 0.05"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, None, environ=env)
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value)


def test_bad_file_values_name_the_key_and_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[store]\nmax_series = -1\n")
    with pytest.raises(
        ConfigError, match=rf"^store\.max_series in {cfg}: Input should be greater than or equal to 1"
    ):
        load_settings(cfg, None, environ={})
    cfg.write_text("[prometheus]\nprot = 1\n")
    with pytest.raises(ConfigError, match=rf"^prometheus\.prot in {cfg}: unknown setting$"):
        load_settings(cfg, None, environ={})
    cfg.write_text("interval = = 3\n")
    with pytest.raises(ConfigError, match=rf"^config file {cfg}: not valid TOML"):
        load_settings(cfg, None, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", None, environ={})


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "otel_sysops", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["run"], ["config", "check"], ["snapshot"]])
def test_cli_exits_2_with_one_line_and_no_traceback(command: list[str]) -> None:
    result = _cli(*command, env={"SYSOPS_PROMETHEUS__PORT": "not-a-port"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "otel-sysops: configuration error: SYSOPS_PROMETHEUS__PORT: Input should be a valid integer, "
        "unable to parse string as an integer (got 'not-a-port')"
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_set_overrides_and_rejects_malformed_pairs() -> None:
    ok = _cli("config", "show", "--set", "prometheus.port=9555", "--interval", "3", env={})
    assert ok.returncode == 0, ok.stderr
    assert '"port": 9555' in ok.stdout
    assert '"interval": 3.0' in ok.stdout
    bad = _cli("config", "check", "--set", "prometheus.port", env={})
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "otel-sysops: configuration error: --set 'prometheus.port': expected KEY=VALUE, "
        "e.g. prometheus.port=9500"
    )


def test_a_setting_can_come_from_a_file_named_by_its_file_variable(tmp_path: Path) -> None:
    secret = tmp_path / "host"
    secret.write_text("db-7\n")
    assert load_settings(None, None, environ={"SYSOPS_HOSTNAME_FILE": str(secret)}).hostname == "db-7"
    # The variable itself wins over its file.
    both = {"SYSOPS_HOSTNAME_FILE": str(secret), "SYSOPS_HOSTNAME": "env-wins"}
    assert load_settings(None, None, environ=both).hostname == "env-wins"
    with pytest.raises(ConfigError, match=r"^SYSOPS_HOSTNAME_FILE: cannot read .*/missing \(No such file"):
        load_settings(None, None, environ={"SYSOPS_HOSTNAME_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match=r"^SYSOPS_NOSUCH_FILE: unknown setting"):
        load_settings(None, None, environ={"SYSOPS_NOSUCH_FILE": str(secret)})
