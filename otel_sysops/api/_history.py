"""Alert history in SQLite: every firing, escalation, resolution and delivery, written off the tick.

The alert manager tells us on the submitter's thread (often the tick); we only queue. One writer
thread applies the queue in batches; readers (the API) open their own connection. Rows are bounded
by age and count; firings left open by a previous run are closed as "agent restarted" at start.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_sysops.alerts import AlertChange, Notification, Severity
from otel_sysops.errors import SysopsError

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (
    id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    rule TEXT NOT NULL,
    metric TEXT NOT NULL,
    host TEXT NOT NULL,
    attributes TEXT NOT NULL,
    labels TEXT NOT NULL,
    severity INTEGER NOT NULL,
    peak INTEGER NOT NULL,
    fired_at REAL NOT NULL,
    resolved_at REAL,
    end_reason TEXT,
    message TEXT NOT NULL,
    value REAL,
    threshold REAL
);
CREATE INDEX IF NOT EXISTS alert_fired ON alert (fired_at);
CREATE INDEX IF NOT EXISTS alert_rule ON alert (rule);
CREATE TABLE IF NOT EXISTS notification (
    alert_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    at REAL NOT NULL,
    state TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS notification_alert ON notification (alert_id);
"""

# Alert fields a history match can name directly; any other key is an attribute or a label.
_COLUMNS = ("rule", "metric", "host", "fingerprint")
_PRUNE_EVERY = 600.0
_BATCH = 5000
_GATHER = 0.05
# Attempts at a batch while another process holds the database locked.
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A validated history query: alerts active at some point in [since, until], newest first."""

    since: float | None = None
    until: float | None = None
    severities: tuple[Severity, ...] = ()
    rules: tuple[str, ...] = ()
    state: str | None = None  # "firing" or "resolved"
    matchers: Mapping[str, str] = field(default_factory=dict)
    limit: int = 100
    offset: int = 0


@dataclass(slots=True)
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


_Item = tuple[str, Any] | _Flush | None


class AlertHistory:
    """Record alert changes and delivery outcomes; an `AlertObserver` of the alert manager."""

    def __init__(
        self,
        path: Path | None,
        max_age: float,
        max_rows: int,
        queue_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age = max_age
        self.max_rows = max_rows
        self.clock = clock
        # Changes refused on a full queue; changes the database refused (after retries).
        self.dropped = 0
        self.lost = 0
        self.written = 0
        self.failures = 0
        self._queue: queue.Queue[_Item] = queue.Queue(queue_size)
        if path is None:
            # A shared in-memory database lives while the writer's connection is open.
            self._target = f"file:sysops-history-{uuid.uuid4().hex}?mode=memory&cache=shared"
        else:
            _create_private(path)
            self._target = path.resolve().as_uri()
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA synchronous=NORMAL")
            if path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            closed = self._close_open_firings()
            self._prune()
        except sqlite3.Error as exc:
            raise SysopsError(f"alert history {path or 'in memory'}: {exc}") from exc
        if closed:
            _log.info("alert history: %d firing(s) of the previous run closed as 'agent restarted'", closed)
        self._next_prune = self.clock() + _PRUNE_EVERY
        self._thread = threading.Thread(target=self._run, name="sysops-history", daemon=True)
        self._thread.start()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self._target, uri=True, check_same_thread=False, isolation_level=None, timeout=5.0
        )

    # -- AlertObserver (any thread, never blocks) -----------------------------------------------

    def alert_changed(self, change: AlertChange) -> None:
        """Queue one change for the writer; count it as dropped when the queue is full."""
        self._put(("change", change))

    def notification_sent(self, channel: str, notification: Notification, error: str | None) -> None:
        """Queue one delivery outcome for the writer."""
        if notification.alerts:
            self._put(("notification", (channel, notification, error, self.clock())))

    def _put(self, item: _Item) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def pending(self) -> int:
        """Return how many changes wait for the writer."""
        return self._queue.qsize()

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, tuple):
                # Let the burst that woke us (one tick's findings) finish first: the tick's thread
                # then runs without sharing the interpreter, and the burst is one transaction.
                time.sleep(_GATHER)
            batch: list[_Item] = [item]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = self._apply(batch)
            if stop:
                return

    def _apply(self, batch: Sequence[_Item]) -> bool:
        """Write a batch in one transaction; return True when the batch holds the stop marker."""
        stop = any(item is None for item in batch)
        flushes = [item for item in batch if isinstance(item, _Flush)]
        changes = [item for item in batch if isinstance(item, tuple)]
        for attempt in range(_ATTEMPTS if changes else 0):
            try:
                with self._transaction():
                    for kind, payload in changes:
                        self._write(kind, payload)
            except sqlite3.OperationalError as exc:
                # Locked by another process (a backup, an operator's sqlite3): wait and try again.
                if attempt + 1 < _ATTEMPTS and "locked" in str(exc):
                    time.sleep(0.2 * 2**attempt)
                    continue
                self._lose(len(changes), exc)
            except sqlite3.Error as exc:
                self._lose(len(changes), exc)
            else:
                self.written += len(changes)
            break
        if self.clock() >= self._next_prune:
            self._next_prune = self.clock() + _PRUNE_EVERY
            try:
                self._prune()
            except sqlite3.Error as exc:
                _log.warning("alert history: pruning failed: %s", exc)
        for flush in flushes:
            flush.done.set()
        return stop

    def _lose(self, count: int, exc: sqlite3.Error) -> None:
        self.failures += 1
        self.lost += count
        _log.warning("alert history: %d change(s) not written: %s", count, exc)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write(self, kind: str, payload: Any) -> None:
        if kind == "change":
            self._write_change(payload)
        else:
            channel, notification, error, at = payload
            self._db.executemany(
                "INSERT INTO notification VALUES (?, ?, ?, ?, ?, ?)",
                [(a.id, channel, at, a.state, error is None, error) for a in notification.alerts],
            )

    def _write_change(self, change: AlertChange) -> None:
        a = change.alert
        if change.kind == "fired":
            self._db.execute(
                "INSERT INTO alert VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET severity = excluded.severity, "
                "peak = max(peak, excluded.peak), resolved_at = NULL, end_reason = NULL, "
                "message = excluded.message, value = excluded.value",
                (
                    a.id,
                    a.fingerprint,
                    a.rule,
                    a.metric,
                    a.host,
                    json.dumps(dict(a.attributes), sort_keys=True),
                    json.dumps(dict(a.labels), sort_keys=True),
                    int(a.severity),
                    int(a.severity),
                    a.starts_at,
                    a.message,
                    a.value,
                    a.threshold,
                ),
            )
        elif change.kind == "escalated":
            self._db.execute(
                "UPDATE alert SET severity = ?, peak = max(peak, ?), message = ?, value = ? WHERE id = ?",
                (int(a.severity), int(a.severity), a.message, a.value, a.id),
            )
        else:
            self._db.execute(
                "UPDATE alert SET resolved_at = ?, end_reason = 'resolved', message = ?, value = ? "
                "WHERE id = ?",
                (a.ends_at, a.message, a.value, a.id),
            )

    def _close_open_firings(self) -> int:
        cur = self._db.execute(
            "UPDATE alert SET resolved_at = ?, end_reason = 'agent restarted' WHERE resolved_at IS NULL",
            (self.clock(),),
        )
        return cur.rowcount

    def _prune(self) -> None:
        """Forget alerts older than the age limit, then the oldest past the row limit."""
        cutoff = self.clock() - self.max_age
        self._db.execute("DELETE FROM alert WHERE coalesce(resolved_at, fired_at) < ?", (cutoff,))
        self._db.execute(
            "DELETE FROM alert WHERE id IN (SELECT id FROM alert ORDER BY fired_at DESC LIMIT -1 OFFSET ?)",
            (self.max_rows,),
        )
        self._db.execute("DELETE FROM notification WHERE alert_id NOT IN (SELECT id FROM alert)")

    def flush(self, timeout: float) -> bool:
        """Wait until every change queued so far is written; return False on timeout."""
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=timeout)
        except queue.Full:
            return False
        return marker.done.wait(timeout)

    def close(self, timeout: float) -> None:
        """Write what is queued (within `timeout` seconds), stop the writer, close the database."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=max(0.01, timeout))
        except queue.Full:
            _log.warning("alert history: writer busy at shutdown; %d change(s) not written", self.pending())
        self._thread.join(max(0.01, deadline - time.monotonic()))
        if not self._thread.is_alive():
            self._db.close()

    # -- reading (any thread, its own connection) -------------------------------------------------

    def query(self, q: HistoryQuery) -> dict[str, Any]:
        """Return one page of alerts matching `q` (newest first), with their notifications and the total."""
        where, args = _where(q)
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            total = db.execute(f"SELECT count(*) FROM alert {where}", args).fetchone()[0]  # noqa: S608 - built from fixed fragments
            rows = db.execute(
                f"SELECT * FROM alert {where} ORDER BY fired_at DESC, id LIMIT ? OFFSET ?",  # noqa: S608 - as above
                [*args, q.limit, q.offset],
            ).fetchall()
            ids = [r["id"] for r in rows]
            sent: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                marks = ",".join("?" * len(ids))
                for n in db.execute(
                    f"SELECT * FROM notification WHERE alert_id IN ({marks}) ORDER BY at",  # noqa: S608 - placeholders only
                    ids,
                ):
                    sent[n["alert_id"]].append(
                        {
                            "channel": n["channel"],
                            "at": n["at"],
                            "state": n["state"],
                            "delivered": bool(n["delivered"]),
                            "error": n["error"],
                        }
                    )
        alerts = [_row(r, sent[r["id"]]) for r in rows]
        return {"total": total, "offset": q.offset, "limit": q.limit, "alerts": alerts}

    def count(self) -> int:
        """Return how many alerts the history holds."""
        with closing(self._connect()) as db:
            return int(db.execute("SELECT count(*) FROM alert").fetchone()[0])


def _where(q: HistoryQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if q.since is not None:
        clauses.append("(resolved_at IS NULL OR resolved_at >= ?)")
        args.append(q.since)
    if q.until is not None:
        clauses.append("fired_at <= ?")
        args.append(q.until)
    if q.severities:
        clauses.append(f"peak IN ({','.join('?' * len(q.severities))})")
        args.extend(int(s) for s in q.severities)
    if q.rules:
        clauses.append("(" + " OR ".join("rule GLOB ?" for _ in q.rules) + ")")
        args.extend(q.rules)
    if q.state == "firing":
        clauses.append("resolved_at IS NULL")
    elif q.state == "resolved":
        clauses.append("resolved_at IS NOT NULL")
    for key, pattern in q.matchers.items():
        if key in _COLUMNS:
            clauses.append(f"{key} GLOB ?")
            args.append(pattern)
        else:
            path = "$." + json.dumps(key)
            clauses.append("(json_extract(attributes, ?) GLOB ? OR json_extract(labels, ?) GLOB ?)")
            args.extend([path, pattern, path, pattern])
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _row(r: sqlite3.Row, notifications: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "fingerprint": r["fingerprint"],
        "rule": r["rule"],
        "metric": r["metric"],
        "host": r["host"],
        "attributes": json.loads(r["attributes"]),
        "labels": json.loads(r["labels"]),
        "severity": Severity(r["peak"]).name.lower(),
        "last_severity": Severity(r["severity"]).name.lower(),
        "state": "firing" if r["resolved_at"] is None else "resolved",
        "fired_at": r["fired_at"],
        "resolved_at": r["resolved_at"],
        "end_reason": r["end_reason"],
        "message": r["message"],
        "value": r["value"],
        "threshold": r["threshold"],
        "notifications": notifications,
    }


def _create_private(path: Path) -> None:
    """Create the database file 0600 in a 0700 directory (when we create them), whatever the umask."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise SysopsError(f"alert history {path}: cannot create ({exc.strerror})") from exc
