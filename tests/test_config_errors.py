"""Every configuration mistake, from the environment, the file or the command line, is one line
naming the key and exit 2 (systemd's RestartPreventExitStatus=2 then stops restarting it).

Run through a real `otel-sysops` process, as an operator meets it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Generous: a mistake is refused before anything starts; an agent that starts anyway runs until
# killed here, which fails the test rather than hanging it.
TIMEOUT = 60


def _sysops(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    clean["SYSOPS_PROMETHEUS__PORT"] = "0"
    clean.update(env or {})
    try:
        return subprocess.run(
            [sys.executable, "-m", "otel_sysops", *args],
            env=clean,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"otel-sysops {' '.join(args)} kept running, the mistake not refused: {exc.stderr!r}")


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], key: str) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("otel-sysops: configuration error: "), lines[0]
    assert key in lines[0], lines[0]
    return lines[0]


RUN = ["run"]
CHECK = ["config", "check"]


@pytest.mark.parametrize(
    ("command", "env", "key"),
    [
        (RUN, {"SYSOPS_INSTRUMENTATION__DISABLED": '["gpu"'}, "SYSOPS_INSTRUMENTATION__DISABLED"),
        (CHECK, {"SYSOPS_INSTRUMENTATION__DISABLED": '["gpu"'}, "SYSOPS_INSTRUMENTATION__DISABLED"),
        (CHECK, {"SYSOPS_ALERTS": "{bad"}, "SYSOPS_ALERTS"),
        (CHECK, {"SYSOPS_ALERTS__CHANNELS": "[{"}, "SYSOPS_ALERTS__CHANNELS"),
        (RUN, {"SYSOPS_NATS": '{"url": '}, "SYSOPS_NATS"),
        (CHECK, {"SYSOPS_INSTRUMENTATION__DISK": "[" * 5000}, "SYSOPS_INSTRUMENTATION__DISK"),
        (RUN, {"SYSOPS_PROCFS": "/host/porc"}, "SYSOPS_PROCFS"),
        (CHECK, {"SYSOPS_PROCFS": "/host/porc"}, "SYSOPS_PROCFS"),
        (CHECK, {"SYSOPS_SYSFS": "/host/sus"}, "SYSOPS_SYSFS"),
    ],
)
def test_a_bad_environment_variable_is_one_line_and_exit_2(
    command: list[str], env: dict[str, str], key: str
) -> None:
    _one_line_exit_2(_sysops(command, env), key)


@pytest.mark.parametrize("command", [CHECK, RUN])
def test_a_typo_in_a_root_is_refused_in_the_file_too(command: list[str], tmp_path: Path) -> None:
    config = tmp_path / "sysops.toml"
    config.write_text('procfs = "/host/porc"\n')
    line = _one_line_exit_2(_sysops([*command, "--config", str(config)]), "procfs")
    assert "does not look like a procfs (no stat)" in line
    line = _one_line_exit_2(_sysops([*command, "--set", "sysfs=/host/sus"]), "sysfs")
    assert "(no devices)" in line


@pytest.mark.parametrize("command", [CHECK, RUN])
@pytest.mark.parametrize(
    "content",
    [
        b'interval = "\xff\xfe"\n',  # invalid UTF-8
        b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",  # arrays nested 5,000 deep
        b"a = " + b"{x = " * 5000 + b"1" + b"}" * 5000 + b"\n",  # inline tables nested 5,000 deep
    ],
    ids=["invalid-utf8", "arrays-5000-deep", "tables-5000-deep"],
)
def test_a_bad_file_is_one_line_and_exit_2(command: list[str], content: bytes, tmp_path: Path) -> None:
    config = tmp_path / "sysops.toml"
    config.write_bytes(content)
    _one_line_exit_2(_sysops([*command, "--config", str(config)]), str(config))


def test_a_bad_command_line_value_is_one_line_and_exit_2() -> None:
    deep = "[" * 5000 + "]" * 5000
    _one_line_exit_2(_sysops(["config", "check", "--set", f"instrumentation.disabled={deep}"]), "--set")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpu", ["gpu"]),
        ("gpu,cgroup", ["gpu", "cgroup"]),
        (" gpu , cgroup ", ["gpu", "cgroup"]),
        ('["gpu", "cgroup"]', ["gpu", "cgroup"]),
    ],
)
def test_a_list_setting_takes_a_plain_comma_list_or_json(value: str, expected: list[str]) -> None:
    proc = _sysops(["config", "show"], {"SYSOPS_INSTRUMENTATION__DISABLED": value})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["instrumentation"]["disabled"] == expected
    proc = _sysops(["config", "show", "--set", f"instrumentation.disabled={value}"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["instrumentation"]["disabled"] == expected


def test_real_roots_pass_the_check() -> None:
    proc = _sysops(["config", "check"], {"SYSOPS_PROCFS": "/proc", "SYSOPS_SYSFS": "/sys"})
    assert (proc.returncode, proc.stdout.strip()) == (0, "configuration ok"), proc.stderr
