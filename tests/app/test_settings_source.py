"""Settings come from an explicit mapping: loading (secrets, reloads) never writes os.environ."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from otel_sysops.settings import load_settings


class _WatchedEnviron(dict[str, str]):
    """A stand-in for os.environ that records every write (os.environ is a stdlib object)."""

    writes: list[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writes = []

    def __setitem__(self, key: str, value: str) -> None:
        self.writes.append(f"set {key}")
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.writes.append(f"del {key}")
        super().__delitem__(key)

    def clear(self) -> None:
        self.writes.append("clear")
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.writes.append("update")
        super().update(*args, **kwargs)

    def pop(self, key: str, *default: Any) -> Any:
        self.writes.append(f"pop {key}")
        return super().pop(key, *default)


def test_secret_files_and_reloads_never_write_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("db-7\n")
    config = tmp_path / "sysops.toml"
    config.write_text("interval = 2.0\n[prometheus]\nport = 9999\n")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    watched = _WatchedEnviron({**clean, "SYSOPS_HOSTNAME_FILE": str(secret), "SYSOPS_INTERVAL": "3"})
    monkeypatch.setattr(os, "environ", watched)
    first = load_settings(config, {"prometheus": {"host": "127.0.0.2"}})
    second = load_settings(config)  # a reload: a new Settings from the same sources
    assert watched.writes == []
    assert first.hostname == second.hostname == "db-7"
    assert first.interval == 3.0  # environment over file
    assert (first.prometheus.host, first.prometheus.port) == ("127.0.0.2", 9999)  # overrides over file
    assert second.prometheus.host != "127.0.0.2"
    assert first is not second
    assert "SYSOPS_HOSTNAME" not in watched


def test_an_explicit_environment_is_used_instead_of_the_process_one(tmp_path: Path) -> None:
    secret = tmp_path / "hostname"
    secret.write_text("from-file")
    settings = load_settings(
        None, None, environ={"SYSOPS_HOSTNAME_FILE": str(secret), "SYSOPS_INTERVAL": "4"}
    )
    assert (settings.hostname, settings.interval) == ("from-file", 4.0)
    assert load_settings(None, None, environ={}).interval == 10.0
