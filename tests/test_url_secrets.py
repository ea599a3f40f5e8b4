"""A password (or token) inside a URL never shows: not in `config show`, the log, or an error line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Command, clean_env, free_port

SECRET = "hunter2-pw"


def _sysops(args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_sysops", *args],
        env=clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("nats://user:pass@host:4222", "nats://user:***@host:4222"),
        ("nats://s3cr3t-token@host", "nats://***@host"),
        ("a nats://u:p@h1,nats://v:q@h2 b", "a nats://u:***@h1,nats://v:***@h2 b"),
        ("https://hooks.example/x?a=b", "https://hooks.example/x?a=b"),
        ("mail me at ops@example.com", "mail me at ops@example.com"),
    ],
)
def test_mask_url_secrets(text: str, masked: str) -> None:
    # Imported here: the other tests go through a real otel-sysops process only.
    from otel_sysops.redact import mask_url_secrets

    assert mask_url_secrets(text) == masked


def test_config_show_masks_the_password_in_the_url(tmp_path: Path) -> None:
    proc = _sysops(["config", "show"], SYSOPS_NATS__URL=f"nats://ops:{SECRET}@127.0.0.1:4222")
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout
    assert json.loads(proc.stdout)["nats"]["url"] == "nats://ops:***@127.0.0.1:4222"
    config = tmp_path / "sysops.toml"
    config.write_text(f'[nats]\nurl = "nats://ops:{SECRET}@127.0.0.1:4222"\n')
    proc = _sysops(["config", "show", "--config", str(config)])
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout


def test_an_error_line_masks_the_password() -> None:
    proc = _sysops(["config", "check"], SYSOPS_NATS__URL=f"nats://ops:{SECRET}@127.0.0.1:4222,")
    assert proc.returncode == 2
    assert "SYSOPS_NATS__URL" in proc.stderr
    assert "nats://ops:***@127.0.0.1:4222" in proc.stderr
    assert SECRET not in proc.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_log_masks_the_password(fmt: str) -> None:
    """The agent logs its NATS server when it cannot reach it (a closed port here)."""
    agent = Command(
        ["run"],
        clean_env(
            SYSOPS_NATS__URL=f"nats://ops:{SECRET}@127.0.0.1:{free_port()}",
            SYSOPS_NATS__RECONNECT_WAIT="0.1",
            SYSOPS_NATS__CONNECT_TIMEOUT="1",
            SYSOPS_PROMETHEUS__PORT="0",
            SYSOPS_LOG__FORMAT=fmt,
            SYSOPS_INTERVAL="0.5",
        ),
    )
    try:
        agent.wait_for_line("cannot reach NATS")
    finally:
        agent.stop()
    text = agent.text
    assert "ops:***@127.0.0.1" in text
    assert SECRET not in text
