"""The hub's database: SQLite (the standard library's) by default, PostgreSQL (psycopg) given a URL.

One SQL dialect serves both: `?` placeholders (rewritten to `%s` for psycopg), `ON CONFLICT`
upserts, JSON kept as text. Migrations are numbered scripts applied in order inside a
transaction; `schema_migrations` records which ran.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from otel_sysops.errors import ConfigError

# Each migration is a list of statements; {real} and {serial} are filled per dialect.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE hosts (
            host TEXT PRIMARY KEY,
            first_seen {real} NOT NULL,
            last_heartbeat {real} NOT NULL,
            interval {real} NOT NULL,
            down INTEGER NOT NULL DEFAULT 0,
            heartbeat TEXT NOT NULL
        )""",
        """CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            host TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL,
            metric TEXT NOT NULL,
            severity TEXT NOT NULL,
            state TEXT NOT NULL,
            starts_at {real} NOT NULL,
            ends_at {real},
            message TEXT NOT NULL,
            value {real},
            received_at {real} NOT NULL,
            doc TEXT NOT NULL
        )""",
        "CREATE INDEX alerts_state ON alerts (state, host)",
        "CREATE INDEX alerts_starts ON alerts (starts_at)",
        """CREATE TABLE inventory (
            host TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            received_at {real} NOT NULL,
            doc TEXT NOT NULL
        )""",
        """CREATE TABLE inventory_changes (
            id {serial},
            host TEXT NOT NULL,
            at {real} NOT NULL,
            old_hash TEXT,
            new_hash TEXT NOT NULL,
            changed TEXT NOT NULL
        )""",
        "CREATE INDEX inventory_changes_host ON inventory_changes (host, at)",
        """CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            hash TEXT NOT NULL UNIQUE,
            created_at {real} NOT NULL
        )""",
    ),
    (
        # Silences the hub forwarded: who asked, to which hosts, and what each agent answered.
        """CREATE TABLE silences (
            id {serial},
            created_at {real} NOT NULL,
            created_by TEXT NOT NULL,
            hosts TEXT NOT NULL,
            request TEXT NOT NULL,
            replies TEXT NOT NULL
        )""",
    ),
)

ALERT_COLUMNS = (
    "id",
    "source",
    "host",
    "fingerprint",
    "rule",
    "metric",
    "severity",
    "state",
    "starts_at",
    "ends_at",
    "message",
    "value",
    "received_at",
    "doc",
)


class Store:
    """A connection to the hub's database; every call is serialized (callers run it on a thread)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self.dialect = "postgresql" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
        if self.dialect == "sqlite":
            path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
            try:
                if str(path) != ":memory:":
                    path.parent.mkdir(parents=True, exist_ok=True)
                self._conn: Any = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(f"hub.database: cannot open {path} ({exc})") from exc
        else:
            try:
                import psycopg
            except ImportError as exc:
                raise ConfigError(
                    "hub.database: PostgreSQL needs psycopg: pip install 'otel-sysops[hub,postgres]'"
                ) from exc
            try:
                self._conn = psycopg.connect(url, autocommit=True)
            except psycopg.Error as exc:
                raise ConfigError(f"hub.database: cannot connect to PostgreSQL ({exc})".strip()) from exc
        self.migrate()

    # -- plumbing -------------------------------------------------------------------------------

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """Hold the lock and run the block in one transaction; yield a cursor."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield _Cursor(cur, self._sql)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Return every row of one SELECT."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute(self._sql(sql), tuple(params))
            return list(cur.fetchall())

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def migrate(self) -> int:
        """Apply the migrations not applied yet; return the schema version."""
        real = "DOUBLE PRECISION" if self.dialect == "postgresql" else "REAL"
        serial = (
            "BIGSERIAL PRIMARY KEY" if self.dialect == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
        )
        with self.transaction() as cur:
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                f"(version INTEGER PRIMARY KEY, applied_at {real})"
            )
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            current = int(cur.fetchone()[0])
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    cur.execute(statement.format(real=real, serial=serial))
                cur.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
        return len(MIGRATIONS)

    def schema_version(self) -> int:
        """Return the highest migration applied."""
        return int(self.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")[0][0])

    # -- hosts ----------------------------------------------------------------------------------

    def load_hosts(self) -> list[tuple[str, float, float, float, bool, dict[str, Any]]]:
        """Return every host: name, first seen, last heartbeat, interval, down, last heartbeat doc."""
        rows = self.query("SELECT host, first_seen, last_heartbeat, interval, down, heartbeat FROM hosts")
        return [(r[0], r[1], r[2], r[3], bool(r[4]), json.loads(r[5])) for r in rows]

    # -- alerts ---------------------------------------------------------------------------------

    def active_alerts(self) -> list[dict[str, Any]]:
        """Return the alerts firing now (the hub's own included)."""
        rows = self.query("SELECT doc, source, received_at FROM alerts WHERE state = 'firing'")
        return [{**json.loads(r[0]), "source": r[1], "received_at": r[2]} for r in rows]

    def alert_history(
        self,
        filters: Mapping[str, str],
        since: float | None,
        until: float | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return (total, page) of alerts, newest first, filtered by equality on the given columns."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in filters.items():
            assert column in ALERT_COLUMNS
            where.append(f"{column} = ?")
            params.append(value)
        if since is not None:
            where.append("COALESCE(ends_at, starts_at) >= ?")
            params.append(since)
        if until is not None:
            where.append("starts_at <= ?")
            params.append(until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = int(self.query(f"SELECT COUNT(*) FROM alerts {clause}", params)[0][0])  # noqa: S608 - columns are checked
        rows = self.query(
            f"SELECT doc, source, received_at FROM alerts {clause} "  # noqa: S608 - columns are checked
            "ORDER BY starts_at DESC, id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return total, [{**json.loads(r[0]), "source": r[1], "received_at": r[2]} for r in rows]

    def prune(self, older_than: float) -> int:
        """Delete resolved alerts that ended before `older_than`; return how many."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM alerts WHERE state = 'resolved' AND ends_at < ?", (older_than,))
            return int(cur.rowcount or 0)

    # -- inventory ------------------------------------------------------------------------------

    def inventory(self, host: str) -> dict[str, Any] | None:
        """Return the latest inventory of a host."""
        rows = self.query("SELECT doc, received_at FROM inventory WHERE host = ?", (host,))
        if not rows:
            return None
        return {"received_at": rows[0][1], "inventory": json.loads(rows[0][0])}

    def inventory_changes(self, host: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
        """Return the inventory changes, newest first (of one host when given)."""
        clause, params = ("WHERE host = ?", [host]) if host else ("", [])
        rows = self.query(
            f"SELECT host, at, old_hash, new_hash, changed FROM inventory_changes {clause} "  # noqa: S608 - constant
            "ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [
            {"host": r[0], "at": r[1], "old_hash": r[2], "new_hash": r[3], "changed": json.loads(r[4])}
            for r in rows
        ]

    # -- API keys -------------------------------------------------------------------------------

    def add_key(self, key_id: str, name: str, role: str, digest: str) -> None:
        """Store one API key (its hash only)."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO api_keys (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (key_id, name, role, digest, time.time()),
            )

    def remove_key(self, name: str) -> bool:
        """Delete a key by name; return whether it existed."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM api_keys WHERE name = ?", (name,))
            return bool(cur.rowcount)

    def list_keys(self) -> list[dict[str, Any]]:
        """Return the keys' ids, names, roles and creation times (never their hashes)."""
        rows = self.query("SELECT id, name, role, created_at FROM api_keys ORDER BY name")
        return [{"id": r[0], "name": r[1], "role": r[2], "created_at": r[3]} for r in rows]

    def key_by_hash(self, digest: str) -> tuple[str, str, str] | None:
        """Return (id, name, role) of the key with this hash."""
        rows = self.query("SELECT id, name, role FROM api_keys WHERE hash = ?", (digest,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None

    # -- silences -------------------------------------------------------------------------------

    def record_silence(
        self, created_by: str, hosts: Iterable[str], request: Mapping[str, Any], replies: Mapping[str, Any]
    ) -> None:
        """Keep a record of one silence request the hub forwarded."""
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO silences (created_at, created_by, hosts, request, replies) "
                "VALUES (?, ?, ?, ?, ?)",
                (time.time(), created_by, json.dumps(list(hosts)), json.dumps(request), json.dumps(replies)),
            )

    def silence_log(self, limit: int) -> list[dict[str, Any]]:
        """Return the silence requests forwarded, newest first."""
        rows = self.query(
            "SELECT created_at, created_by, hosts, request, replies FROM silences ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            {
                "created_at": r[0],
                "created_by": r[1],
                "hosts": json.loads(r[2]),
                "request": json.loads(r[3]),
                "replies": json.loads(r[4]),
            }
            for r in rows
        ]


class _Cursor:
    """A cursor that rewrites placeholders for the dialect."""

    def __init__(self, cur: Any, sql: Any) -> None:
        self._cur = cur
        self._sql = sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cur.executemany(self._sql(sql), [tuple(r) for r in rows])

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)
