"""The hub's database on SQLite and on a real PostgreSQL server: migrations, ingestion, history, down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_sysops.hub import FleetState, Store
from otel_sysops.hub._state import Incoming
from tests.conftest import free_port, need
from tests.hub.conftest import alert_doc, heartbeat


def _pg_bin(name: str) -> str:
    for base in ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin"):
        if Path(base, name).exists():
            return str(Path(base, name))
    found = shutil.which(name)
    need(found is not None, f"PostgreSQL's {name} is not installed")
    assert found is not None
    return found


@pytest.fixture
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port (run as the postgres user when we are root)."""
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="hub-pg-"))
    if os.geteuid() == 0:
        need(shutil.which("runuser") is not None, "runuser is needed to run PostgreSQL as root")
        as_user = ["runuser", "-u", "postgres", "--"]
        root.chmod(0o755)
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    try:
        made = subprocess.run(
            [*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust"],
            check=False,
            capture_output=True,
            timeout=120,
        )
        if made.returncode != 0:
            # The binaries are here but this machine cannot run them (e.g. no usable /dev/null).
            pytest.skip(f"initdb failed here: {made.stderr.decode(errors='replace').strip()[-300:]}")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _exercise(url: str) -> None:
    store = Store(url)
    assert store.schema_version() == 2
    state = FleetState(store, missed=3)
    events = state.apply(
        [
            Incoming("heartbeat", heartbeat("a", 10.0), 1000.0),
            Incoming("heartbeat", heartbeat("b", 10.0), 1000.0),
            Incoming("alerts", json.dumps(alert_doc(1, "a")).encode(), 1001.0),
            Incoming("alerts", b"[]", 1001.0),
            Incoming("inventory", json.dumps({"host": "a", "hash": "x", "os": {"k": 1}}).encode(), 1002.0),
            Incoming("inventory", json.dumps({"host": "a", "hash": "y", "os": {"k": 2}}).encode(), 1003.0),
        ]
    )
    assert {e["type"] for e in events} == {"host", "alert", "inventory"}
    assert state.counts["malformed"] == 1
    state.apply([Incoming("heartbeat", heartbeat("a", 10.0), 1040.0)])
    down = state.check(now=1040.5)
    assert [e["host"] for e in down if e["type"] == "host"] == ["b"]
    state.apply([Incoming("alerts", json.dumps(alert_doc(1, "a", state="resolved")).encode(), 1050.0)])
    store.close()

    # A second process on the same database: migrations are not re-applied, everything is there.
    again = Store(url)
    assert again.schema_version() == 2
    state = FleetState(again, missed=3)
    assert {h: s.down for h, s in state.hosts.items()} == {"a": False, "b": True}
    total, alerts = again.alert_history({}, None, None, 10, 0)
    assert total == 2
    assert {(a["rule"], a["state"]) for a in alerts} == {("cpu_high", "resolved"), ("host_down", "firing")}
    assert again.alert_history({"source": "hub"}, None, None, 10, 0)[0] == 1
    changes = again.inventory_changes("a", 10, 0)
    assert [c["changed"] for c in changes] == [["os.k"], []]
    state.apply([Incoming("heartbeat", heartbeat("b", 10.0), 1060.0)])
    assert again.alert_history({"state": "resolved", "rule": "host_down"}, None, None, 10, 0)[0] == 1
    again.close()


def test_sqlite(tmp_path: Path) -> None:
    _exercise(f"sqlite:///{tmp_path / 'hub.db'}")


@pytest.mark.slow
def test_postgresql(postgres: str) -> None:
    _exercise(postgres)
