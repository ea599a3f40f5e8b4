"""Subjects and JSON payloads of the bridge (documented in docs/nats.md, schemas in docs/schemas/)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from otel_sysops import __version__
from otel_sysops.alerts import Alert, AlertSink
from otel_sysops.health import Health
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings

from ._summary import heartbeat_summary

# Bump when a field changes meaning or type; consumers check it.
SCHEMA_VERSION = 1

CONTROL_OPS = ("status", "inventory", "silence", "reload")

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def host_token(host: str) -> str:
    """Return the host name as one NATS subject token (dots, spaces and wildcards become '_')."""
    return _UNSAFE.sub("_", host) or "_"


@dataclass(frozen=True, slots=True)
class Subjects:
    """The subjects of one host under a prefix."""

    prefix: str
    host: str

    def _base(self) -> str:
        return f"{self.prefix}.{host_token(self.host)}"

    @property
    def alerts(self) -> str:
        return f"{self._base()}.alerts"

    @property
    def inventory(self) -> str:
        return f"{self._base()}.inventory"

    @property
    def heartbeat(self) -> str:
        return f"{self._base()}.heartbeat"

    def control(self, op: str) -> str:
        return f"{self._base()}.control.{op}"


def encode(doc: Mapping[str, Any]) -> bytes:
    """Return the compact JSON of a payload."""
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


def alert_payload(alert: Alert) -> dict[str, Any]:
    """Return the payload of `{prefix}.{host}.alerts`: the alert's JSON form with the schema version."""
    return {"schema_version": SCHEMA_VERSION, **alert.to_dict()}


def alert_msg_id(alert: Alert) -> str:
    """Return the JetStream de-duplication id: the alert id, suffixed for its resolution.

    The resolution of an alert carries the same id as its firing; without the suffix the server
    would drop a resolution that follows the firing within the stream's duplicate window.
    """
    return alert.id if alert.state == "firing" else f"{alert.id}:{alert.state}"


class AgentView(Protocol):
    """What the bridge reads from the running agent (`otel_sysops.agent.Agent` satisfies it)."""

    settings: Settings
    pipeline: Pipeline
    alerts: AlertSink
    started: float
    ticks: int

    def health(self) -> Health:
        """Return liveness and readiness."""


def collector_health(pipeline: Pipeline) -> dict[str, dict[str, Any]]:
    """Return each collector's state at the last tick: ok, failed (with the reason) or pending."""
    failed = pipeline.last_result.failed if pipeline.last_result is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for name, collector in pipeline.collectors.items():
        if name in failed:
            out[name] = {"status": "failed", "error": failed[name]}
        elif pipeline.last_tick is None:
            out[name] = {"status": "pending", "error": None}
        elif getattr(collector, "snapshot", None) is None:
            out[name] = {"status": "failed", "error": "no sample"}
        else:
            out[name] = {"status": "ok", "error": None}
    return out


def heartbeat_payload(
    agent: AgentView, host: str, interval: float, bridge: Mapping[str, Any], now: float | None = None
) -> dict[str, Any]:
    """Return the payload of `{prefix}.{host}.heartbeat`."""
    wall = time.time() if now is None else now
    pipeline = agent.pipeline
    health = agent.health()
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host,
        "time": wall,
        "interval": interval,
        "agent": {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": agent.started,
            "uptime_s": max(0.0, wall - agent.started),
        },
        "tick_interval": agent.settings.interval,
        "ticks": agent.ticks,
        "last_tick": pipeline.last_tick,
        "health": {"alive": health.alive, "ready": health.ready, "detail": health.detail},
        "collectors": collector_health(pipeline),
        "errors": [
            {"plugin": plugin, "kind": kind, "count": count}
            for (plugin, kind), count in sorted(pipeline.errors.snapshot().items())
        ],
        "bridge": dict(bridge),
        "summary": heartbeat_summary(pipeline),
    }


def reply(ok: bool, **fields: Any) -> dict[str, Any]:
    """Return a control-plane reply."""
    return {"schema_version": SCHEMA_VERSION, "ok": ok, **fields}
