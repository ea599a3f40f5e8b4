"""`otel-sysops hub` and `otel-sysops hub keys` from the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from otel_sysops.cli import main
from otel_sysops.hub import Store
from otel_sysops.hub._auth import digest


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SYSOPS_"):
            monkeypatch.delenv(key)


def test_a_bad_hub_setting_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hub", "--set", "hub.missed_heartbeats=0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "hub.missed_heartbeats" in err
    assert main(["hub", "--set", "hub.grafana_url_template=https://grafana.example.net/d/x"]) == 2
    assert "{host}" in capsys.readouterr().err
    assert main(["hub", "--set", "hub.database=mysql://x"]) == 2


def test_unreachable_nats_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "hub",
            "--set",
            "nats.url=nats://127.0.0.1:1",
            "--set",
            "nats.connect_timeout=1",
            "--set",
            f"hub.database={tmp_path / 'hub.db'}",
            "--set",
            "hub.port=0",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("cannot reach NATS at nats://127.0.0.1:1" in line for line in err)
    assert not any("Traceback" in line for line in err)


def test_keys_add_list_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--set", f"hub.database={tmp_path / 'hub.db'}"]
    assert main(["hub", "keys", "add", "alice", "--role", "operator", *db]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("osh_")
    store = Store(f"sqlite:///{tmp_path / 'hub.db'}")
    assert store.key_by_hash(digest(key)) is not None
    assert key not in json.dumps(store.query("SELECT * FROM api_keys"))
    store.close()
    assert main(["hub", "keys", "add", "alice", *db]) == 2
    capsys.readouterr()
    assert main(["hub", "keys", "list", *db]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["name"], k["role"]) for k in listed] == [("alice", "operator")]
    assert main(["hub", "keys", "rm", "alice", *db]) == 0
    assert main(["hub", "keys", "rm", "alice", *db]) == 1
