"""What the hub knows: every host and its last heartbeat, the alerts firing, inventory hashes.

`apply` folds one batch of messages into memory and into the database in one transaction (the
consumer acknowledges the batch only after it returns), `check` marks hosts down.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_sysops.findings import Finding, Severity, fingerprint

from ._store import Store

_log = logging.getLogger(__name__)

DOWN_RULE = "host_down"
DOWN_METRIC = "sysops.hub.heartbeat"
SEVERITIES = ("info", "warning", "critical", "emergency")


@dataclass(slots=True)
class Host:
    """One host as the hub sees it."""

    host: str
    first_seen: float
    last_heartbeat: float
    interval: float
    down: bool = False
    heartbeat: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message from the stream: its subject's kind, its body and when the server stored it."""

    kind: str  # "heartbeat", "alerts", "inventory"
    data: bytes
    received_at: float


def summary_of(heartbeat: dict[str, Any]) -> dict[str, Any]:
    """Return the heartbeat's CPU/memory/disk summary (fractions 0..1), when the agent sends one."""
    raw = heartbeat.get("summary")
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _changed_paths(old: Any, new: Any, prefix: str = "", depth: int = 2) -> list[str]:
    """Return the dotted paths (to `depth` levels) whose values differ between two documents."""
    if depth == 0 or not isinstance(old, dict) or not isinstance(new, dict):
        return [] if old == new else [prefix or "."]
    out: list[str] = []
    for key in sorted(set(old) | set(new)):
        if key in ("collected_at", "hash"):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        out += _changed_paths(old.get(key), new.get(key), path, depth - 1)
    return out


class FleetState:
    """The fleet in memory, kept in step with the database; every method is thread-safe."""

    def __init__(
        self,
        store: Store,
        missed: int,
        submit: Callable[[Finding], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.missed = missed
        self.clock = clock
        self._submit = submit
        self.lock = threading.Lock()
        self.hosts: dict[str, Host] = {}
        # (host, fingerprint) -> alert document (agents' and the hub's own).
        self.active: dict[tuple[str, str], dict[str, Any]] = {}
        self.inventory_hash: dict[str, str] = {}
        self._rows_cache: tuple[float, list[dict[str, Any]]] | None = None
        self.counts = {"heartbeats": 0, "alerts": 0, "inventories": 0, "malformed": 0, "down": 0}
        self._load()

    def _load(self) -> None:
        for host, first, last, interval, down, doc in self.store.load_hosts():
            self.hosts[host] = Host(host, first, last, interval, down, doc)
        for alert in self.store.active_alerts():
            self.active[(alert["host"], alert["fingerprint"])] = alert
        for host, digest in self.store.query("SELECT host, hash FROM inventory"):
            self.inventory_hash[host] = digest

    # -- ingestion ------------------------------------------------------------------------------

    def apply(self, batch: Sequence[Incoming]) -> list[dict[str, Any]]:
        """Fold a batch in, commit it; return the events to broadcast."""
        events: list[dict[str, Any]] = []
        findings: list[Finding] = []
        with self.lock, self.store.transaction() as cur:
            beats: dict[str, Host] = {}
            for message in batch:
                try:
                    doc = json.loads(message.data)
                    if not isinstance(doc, dict):
                        raise ValueError("not an object")
                    if message.kind == "heartbeat":
                        host = self._heartbeat(doc, message.received_at, events, findings, cur)
                        beats[host.host] = host
                    elif message.kind == "alerts":
                        self._alert(doc, message.received_at, events, cur)
                    elif message.kind == "inventory":
                        self._inventory(doc, message.received_at, events, cur)
                except (ValueError, TypeError, KeyError) as exc:
                    self.counts["malformed"] += 1
                    _log.debug("skipped a malformed %s message: %s", message.kind, exc)
            cur.executemany(
                "INSERT INTO hosts (host, first_seen, last_heartbeat, interval, down, heartbeat) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host) DO UPDATE SET "
                "last_heartbeat = excluded.last_heartbeat, interval = excluded.interval, "
                "down = excluded.down, heartbeat = excluded.heartbeat",
                [
                    (h.host, h.first_seen, h.last_heartbeat, h.interval, int(h.down), json.dumps(h.heartbeat))
                    for h in beats.values()
                ],
            )
        self._notify(findings)
        return events

    def resubmit_down(self) -> int:
        """Tell the alert manager again about hosts the database says are down (after a restart).

        Without it, a host that comes back after a hub restart would resolve an alert the new
        manager never saw, and no channel would hear of its return.
        """
        findings = []
        with self.lock:
            for host in self.hosts.values():
                if host.down:
                    attributes = {"host.name": host.host}
                    message = f"{host.host} is down (still, when the hub started)"
                    findings.append(Finding(DOWN_RULE, DOWN_METRIC, attributes, Severity.CRITICAL, message))
        self._notify(findings)
        return len(findings)

    def _notify(self, findings: list[Finding]) -> None:
        if self._submit is not None:
            for finding in findings:
                self._submit(finding)

    def _heartbeat(
        self,
        doc: dict[str, Any],
        received_at: float,
        events: list[dict[str, Any]],
        findings: list[Finding],
        cur: Any,
    ) -> Host:
        name = str(doc["host"])
        interval = float(doc["interval"])
        if not name or not interval > 0:
            raise ValueError("host and a positive interval are required")
        self.counts["heartbeats"] += 1
        host = self.hosts.get(name)
        if host is None:
            host = Host(name, received_at, received_at, interval)
            self.hosts[name] = host
            events.append({"type": "host", "host": name, "status": "up", "new": True})
        elif received_at < host.last_heartbeat:
            return host  # an older heartbeat redelivered: keep the newer one
        host.last_heartbeat, host.interval, host.heartbeat = received_at, interval, doc
        if host.down:
            host.down = False
            self._resolve_down(host, received_at, events, findings, cur)
            events.append({"type": "host", "host": name, "status": "up"})
        return host

    def _alert(self, doc: dict[str, Any], received_at: float, events: list[dict[str, Any]], cur: Any) -> None:
        alert_id, host, fp, state = str(doc["id"]), str(doc["host"]), str(doc["fingerprint"]), doc["state"]
        if state not in ("firing", "resolved"):
            raise ValueError(f"unknown state {state!r}")
        doc = {**doc, "source": "agent", "received_at": received_at}
        self._write_alert(cur, doc, "agent", received_at)
        self.counts["alerts"] += 1
        if state == "firing":
            self.active[(host, fp)] = doc
        else:
            self.active.pop((host, fp), None)
        events.append({"type": "alert", "alert": doc, "id": alert_id})

    def _write_alert(self, cur: Any, doc: dict[str, Any], source: str, received_at: float) -> None:
        stored = {k: v for k, v in doc.items() if k not in ("source", "received_at")}
        severity = str(doc.get("severity", "warning"))
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        value = doc.get("value")
        cur.execute(
            "INSERT INTO alerts (id, source, host, fingerprint, rule, metric, severity, state, starts_at, "
            "ends_at, message, value, received_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET state = excluded.state, ends_at = excluded.ends_at, "
            "severity = excluded.severity, message = excluded.message, value = excluded.value, "
            "received_at = excluded.received_at, doc = excluded.doc",
            (
                str(doc["id"]),
                source,
                str(doc["host"]),
                str(doc["fingerprint"]),
                str(doc.get("rule", "")),
                str(doc.get("metric", "")),
                severity,
                str(doc["state"]),
                float(doc.get("starts_at") or received_at),
                None if doc.get("ends_at") is None else float(doc["ends_at"]),
                str(doc.get("message", "")),
                float(value) if isinstance(value, int | float) else None,
                received_at,
                json.dumps(stored),
            ),
        )

    def _inventory(
        self, doc: dict[str, Any], received_at: float, events: list[dict[str, Any]], cur: Any
    ) -> None:
        host = str(doc.get("host") or (doc.get("os") or {}).get("hostname") or "")
        digest = str(doc["hash"])
        if not host:
            raise ValueError("inventory without a host")
        self.counts["inventories"] += 1
        old_hash = self.inventory_hash.get(host)
        if old_hash == digest:
            cur.execute("UPDATE inventory SET received_at = ? WHERE host = ?", (received_at, host))
            return
        changed: list[str] = []
        if old_hash is not None:
            cur.execute("SELECT doc FROM inventory WHERE host = ?", (host,))
            row = cur.fetchone()
            changed = _changed_paths(json.loads(row[0]) if row else {}, doc)
        cur.execute(
            "INSERT INTO inventory (host, hash, received_at, doc) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (host) DO UPDATE SET hash = excluded.hash, received_at = excluded.received_at, "
            "doc = excluded.doc",
            (host, digest, received_at, json.dumps(doc)),
        )
        cur.execute(
            "INSERT INTO inventory_changes (host, at, old_hash, new_hash, changed) VALUES (?, ?, ?, ?, ?)",
            (host, received_at, old_hash, digest, json.dumps(changed)),
        )
        self.inventory_hash[host] = digest
        events.append({"type": "inventory", "host": host, "hash": digest, "changed": changed})

    # -- down detection -------------------------------------------------------------------------

    def check(self, now: float | None = None) -> list[dict[str, Any]]:
        """Mark hosts down after `missed` intervals without a heartbeat; return the events."""
        wall = self.clock() if now is None else now
        events: list[dict[str, Any]] = []
        findings: list[Finding] = []
        with self.lock:
            late = [
                h
                for h in self.hosts.values()
                if not h.down and wall - h.last_heartbeat > self.missed * h.interval
            ]
            if not late:
                return events
            with self.store.transaction() as cur:
                for host in late:
                    host.down = True
                    self.counts["down"] += 1
                    age = wall - host.last_heartbeat
                    attributes = {"host.name": host.host}
                    message = (
                        f"{host.host} is down: no heartbeat for {age:.0f}s "
                        f"({self.missed} intervals of {host.interval:g}s missed)"
                    )
                    doc = {
                        "schema_version": 1,
                        "id": uuid.uuid4().hex,
                        "fingerprint": fingerprint(DOWN_RULE, DOWN_METRIC, attributes),
                        "rule": DOWN_RULE,
                        "metric": DOWN_METRIC,
                        "attributes": attributes,
                        "severity": "critical",
                        "state": "firing",
                        "starts_at": wall,
                        "ends_at": None,
                        "value": age,
                        "threshold": self.missed * host.interval,
                        "message": message,
                        "host": host.host,
                        "labels": {},
                    }
                    self._write_alert(cur, doc, "hub", wall)
                    cur.execute("UPDATE hosts SET down = 1 WHERE host = ?", (host.host,))
                    doc = {**doc, "source": "hub", "received_at": wall}
                    self.active[(host.host, str(doc["fingerprint"]))] = doc
                    findings.append(
                        Finding(DOWN_RULE, DOWN_METRIC, attributes, Severity.CRITICAL, message, value=age)
                    )
                    events.append({"type": "host", "host": host.host, "status": "down"})
                    events.append({"type": "alert", "alert": doc, "id": doc["id"]})
                    _log.warning("%s", message)
        self._notify(findings)
        return events

    def _resolve_down(
        self, host: Host, now: float, events: list[dict[str, Any]], findings: list[Finding], cur: Any
    ) -> None:
        attributes = {"host.name": host.host}
        fp = fingerprint(DOWN_RULE, DOWN_METRIC, attributes)
        doc = self.active.pop((host.host, fp), None)
        message = f"{host.host} is back: heartbeats resumed"
        findings.append(Finding(DOWN_RULE, DOWN_METRIC, attributes, None, message))
        _log.info("%s", message)
        if doc is None:
            return
        doc = {**doc, "state": "resolved", "ends_at": now, "message": message}
        self._write_alert(cur, doc, "hub", now)
        events.append({"type": "alert", "alert": doc, "id": doc["id"]})

    # -- reads ----------------------------------------------------------------------------------

    def host_rows(self, now: float | None = None, max_age: float = 0.0) -> list[dict[str, Any]]:
        """Return every host's row of the fleet table (a copy of the list: callers sort and filter it).

        With `max_age`, rows built less than that many seconds ago are reused (concurrent API
        readers of a large fleet share one build).
        """
        wall = self.clock() if now is None else now
        cached = self._rows_cache
        if max_age > 0 and cached is not None and 0 <= wall - cached[0] < max_age:
            return list(cached[1])
        rows = self._build_rows(wall)
        self._rows_cache = (wall, rows)
        return list(rows)

    def _build_rows(self, wall: float) -> list[dict[str, Any]]:
        with self.lock:
            by_host: dict[str, dict[str, int]] = {}
            for (host, _), alert in self.active.items():
                counts = by_host.setdefault(host, dict.fromkeys(SEVERITIES, 0))
                sev = str(alert.get("severity", "warning"))
                counts[sev] = counts.get(sev, 0) + 1
            return [self._row(h, wall, by_host.get(h.host)) for h in self.hosts.values()]

    def _row(self, h: Host, wall: float, counts: dict[str, int] | None) -> dict[str, Any]:
        agent = h.heartbeat.get("agent") or {}
        collectors = h.heartbeat.get("collectors") or {}
        return {
            "host": h.host,
            "status": "down" if h.down else "up",
            "last_heartbeat": h.last_heartbeat,
            "age_s": round(max(0.0, wall - h.last_heartbeat), 3),
            "interval": h.interval,
            "first_seen": h.first_seen,
            "version": agent.get("version") if isinstance(agent, dict) else None,
            "uptime_s": agent.get("uptime_s") if isinstance(agent, dict) else None,
            "summary": summary_of(h.heartbeat),
            "failed_collectors": sorted(
                n for n, c in collectors.items() if isinstance(c, dict) and c.get("status") == "failed"
            )
            if isinstance(collectors, dict)
            else [],
            "alerts": counts or dict.fromkeys(SEVERITIES, 0),
        }

    def host_detail(self, name: str) -> dict[str, Any] | None:
        """Return one host's row with its last heartbeat, or None."""
        with self.lock:
            host = self.hosts.get(name)
            if host is None:
                return None
            alerts = [a for (h, _), a in self.active.items() if h == name]
        counts = dict.fromkeys(SEVERITIES, 0)
        for alert in alerts:
            counts[str(alert.get("severity"))] = counts.get(str(alert.get("severity")), 0) + 1
        return {**self._row(host, self.clock(), counts), "heartbeat": host.heartbeat, "active_alerts": alerts}

    def active_alerts(self) -> list[dict[str, Any]]:
        """Return the alerts firing now, newest first."""
        with self.lock:
            alerts = list(self.active.values())
        return sorted(alerts, key=lambda a: -(a.get("starts_at") or 0))
