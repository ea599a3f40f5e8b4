"""Persist the ring store's 1-minute rollups to SQLite (WAL), so a restart keeps the history."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from otel_sysops._private import private_dir, private_file
from otel_sysops.errors import SysopsError

from ._ring import AttrKey, RingStore

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup (
    minute REAL NOT NULL,
    metric TEXT NOT NULL,
    attributes TEXT NOT NULL,
    vmin REAL, vmax REAL, vmean REAL, vlast REAL,
    PRIMARY KEY (metric, attributes, minute)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rollup_minute ON rollup (minute);
"""


class RollupDatabase:
    """Write every closed minute of the store to SQLite and load the window back at start."""

    def __init__(self, path: Path, window: float) -> None:
        self.path = path
        self.window = window
        self._lock = threading.Lock()
        self._last_prune = 0.0
        try:
            # 0600 (and its -wal/-shm files, which SQLite gives the database's mode), whatever the umask.
            private_file(private_dir(path.parent, narrow_existing=False) / path.name)
            # The store calls us from the tick thread; the lock serialises every use.
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise SysopsError(f"rollup database {path}: {exc}") from exc

    def attach(self, store: RingStore) -> int:
        """Load the rollups inside the window into `store`, then follow its closed minutes."""
        since = time.time() - self.window
        with self._lock:
            rows = self._db.execute(
                "SELECT minute, metric, attributes, vmin, vmax, vmean, vlast FROM rollup "
                "WHERE minute >= ? ORDER BY minute",
                (since,),
            ).fetchall()
        restored = store.load_rollups(
            (minute, metric, _decode(attrs), vmin, vmax, vmean, vlast)
            for minute, metric, attrs, vmin, vmax, vmean, vlast in rows
        )
        store.on_rollup.append(self.write)
        _log.info("restored %d rollup points from %s", restored, self.path)
        return restored

    def write(self, minute: float, rows: list[tuple[str, AttrKey, float, float, float, float]]) -> None:
        """Store one minute's rollups; a database error is logged, never raised into the tick."""
        try:
            with self._lock:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(minute, name, json.dumps(key), *vals) for name, key, *vals in rows],
                )
                if minute - self._last_prune >= 3600:
                    self._db.execute("DELETE FROM rollup WHERE minute < ?", (minute - self.window,))
                    self._last_prune = minute
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            _log.warning("rollup database %s: write failed: %s", self.path, exc)
            with self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _decode(text: str) -> AttrKey:
    return tuple((str(k), str(v)) for k, v in json.loads(text))
