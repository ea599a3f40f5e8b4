"""The fleet view: every host's last heartbeat, the stale ones, and the alerts firing across the fleet."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._payloads import SCHEMA_VERSION

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class HostState:
    """What the fleet knows of one host."""

    host: str
    last_heartbeat: float
    interval: float
    version: str | None = None
    uptime_s: float | None = None
    alive: bool | None = None
    failed_collectors: list[str] = field(default_factory=list)


class FleetView:
    """Fold heartbeats and alerts into the fleet's state; a host is stale after `stale_factor` intervals."""

    def __init__(self, stale_factor: float = 3.0) -> None:
        self.stale_factor = stale_factor
        self.hosts: dict[str, HostState] = {}
        # Firing alerts by fingerprint (a resolution carries the firing's fingerprint).
        self.alerts: dict[tuple[str, str], dict[str, Any]] = {}
        self.malformed = 0

    def on_heartbeat(self, doc: dict[str, Any], received_at: float) -> None:
        """Record a heartbeat payload (the receive time counts, not the sender's clock)."""
        try:
            host = str(doc["host"])
            interval = float(doc["interval"])
        except (KeyError, TypeError, ValueError):
            self.malformed += 1
            return
        collectors = doc.get("collectors") or {}
        self.hosts[host] = HostState(
            host=host,
            last_heartbeat=received_at,
            interval=interval,
            version=(doc.get("agent") or {}).get("version"),
            uptime_s=(doc.get("agent") or {}).get("uptime_s"),
            alive=(doc.get("health") or {}).get("alive"),
            failed_collectors=sorted(
                n for n, c in collectors.items() if isinstance(c, dict) and c.get("status") == "failed"
            ),
        )

    def on_alert(self, doc: dict[str, Any]) -> None:
        """Record an alert payload: firing adds it, resolved removes it."""
        try:
            key = (str(doc["host"]), str(doc["fingerprint"]))
            state = doc["state"]
        except (KeyError, TypeError):
            self.malformed += 1
            return
        if state == "firing":
            self.alerts[key] = doc
        else:
            self.alerts.pop(key, None)

    def is_stale(self, state: HostState, now: float) -> bool:
        """Return whether no heartbeat came for `stale_factor` intervals."""
        return now - state.last_heartbeat > self.stale_factor * state.interval

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """Return the fleet as JSON (docs/schemas/fleet.json)."""
        wall = time.time() if now is None else now
        counts: dict[str, int] = {}
        for host, _ in self.alerts:
            counts[host] = counts.get(host, 0) + 1
        hosts = [
            {
                "host": s.host,
                "last_heartbeat": s.last_heartbeat,
                "age_s": round(wall - s.last_heartbeat, 3),
                "interval": s.interval,
                "stale": self.is_stale(s, wall),
                "alive": s.alive,
                "version": s.version,
                "uptime_s": s.uptime_s,
                "failed_collectors": s.failed_collectors,
                "active_alerts": counts.get(s.host, 0),
            }
            for s in sorted(self.hosts.values(), key=lambda s: s.host)
        ]
        return {
            "schema_version": SCHEMA_VERSION,
            "generated_at": wall,
            "hosts": hosts,
            "stale": [h["host"] for h in hosts if h["stale"]],
            "alerts": sorted(self.alerts.values(), key=lambda a: (a.get("starts_at") or 0, a["host"])),
        }

    def render(self, now: float | None = None) -> str:
        """Return the fleet as a terminal table."""
        doc = self.to_json(now)
        lines = [
            f"{len(doc['hosts'])} host(s), {len(doc['stale'])} stale, {len(doc['alerts'])} alert(s) firing",
            "",
            f"{'HOST':<32} {'LAST BEAT':>10} {'STATE':<8} {'VERSION':<12} {'ALERTS':>6}  FAILED COLLECTORS",
        ]
        for h in doc["hosts"]:
            state = "STALE" if h["stale"] else ("ok" if h["alive"] is not False else "unhealthy")
            lines.append(
                f"{h['host'][:32]:<32} {h['age_s']:>9.1f}s {state:<8} {(h['version'] or '-')[:12]:<12} "
                f"{h['active_alerts']:>6}  {', '.join(h['failed_collectors']) or '-'}"
            )
        if doc["alerts"]:
            lines += ["", f"{'SEVERITY':<10} {'HOST':<24} {'RULE':<24} MESSAGE"]
            lines.extend(
                f"{a.get('severity', '?'):<10} {a['host'][:24]:<24} {str(a.get('rule'))[:24]:<24} "
                f"{a.get('message', '')}"
                for a in doc["alerts"]
            )
        return "\n".join(lines)


async def watch_fleet(nc: Client, prefix: str, view: FleetView, queue: str = "") -> None:
    """Subscribe (in `queue` when given) to every host's heartbeats and alerts, feeding `view`."""

    async def on_message(msg: Msg) -> None:
        try:
            doc = json.loads(msg.data)
        except ValueError:
            view.malformed += 1
            return
        if not isinstance(doc, dict):
            view.malformed += 1
        elif msg.subject.endswith(".heartbeat"):
            view.on_heartbeat(doc, time.time())
        else:
            view.on_alert(doc)

    await nc.subscribe(f"{prefix}.*.heartbeat", queue=queue, cb=on_message, pending_msgs_limit=1_000_000)
    await nc.subscribe(f"{prefix}.*.alerts", queue=queue, cb=on_message, pending_msgs_limit=1_000_000)
    await nc.flush()
