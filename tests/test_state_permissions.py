"""State files (NATS spool, SQLite rollups, log positions) are 0600 in 0700 directories whatever the
umask: no other local user reads an alert, a rollup or a log position."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_sysops.bridge._outbox import Outbox
from otel_sysops.store._sqlite import RollupDatabase


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_spool_directory_and_files_are_private(tmp_path: Path, umask: int) -> None:
    spool = tmp_path / "state" / "spool"
    box = Outbox(10, spool)
    box.put("sysops.h.alerts", b'{"a": 1}', "alert", "id-1")
    files = list(spool.iterdir())
    assert files
    assert {mode(p) for p in files} == {0o600}
    assert mode(spool) == mode(spool.parent) == 0o700


def test_an_existing_spool_directory_of_ours_is_narrowed(tmp_path: Path, umask: int) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o755)
    os.chmod(spool, 0o755)
    Outbox(10, spool).put("s", b"x", "alert")
    assert mode(spool) == 0o700


def test_sqlite_rollups_and_their_wal_are_private(tmp_path: Path, umask: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    db_path = shared / "new" / "rollups.db"
    db = RollupDatabase(db_path, 3600.0)
    try:
        db._db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        db._db.execute("INSERT INTO probe VALUES (1)")
        made = [p for p in db_path.parent.iterdir() if p.name.startswith("rollups.db")]
        assert {p.name for p in made} >= {"rollups.db", "rollups.db-wal"}
        assert {mode(p) for p in made} == {0o600}
        assert mode(db_path.parent) == 0o700  # created by us
        assert mode(shared) == 0o755  # only holds our directory: left as the operator set it
    finally:
        db.close()


def test_helpers_narrow_what_exists_and_write_atomically(tmp_path: Path, umask: int) -> None:
    # Imported here: the tests above exercise the state files through their owners only.
    from otel_sysops._private import private_dir, private_file, write_private

    loose = tmp_path / "loose"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    assert mode(private_file(loose)) == 0o600
    target = private_dir(tmp_path / "a" / "b") / "state.json"
    write_private(target, b"{}")
    assert (target.read_bytes(), mode(target)) == (b"{}", 0o600)
    assert mode(tmp_path / "a") == mode(tmp_path / "a" / "b") == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]
