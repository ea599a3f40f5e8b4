"""Helpers of the bridge tests: alerts, a small alert manager behind the SilenceControl protocol."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import jsonschema

from otel_sysops.alerts import Alert, AlertState, Channel, Finding, Notification, Severity

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def make_alert(i: int, *, state: AlertState = "firing", rule: str = "cpu_high", host: str = "h1") -> Alert:
    return Alert(
        id=f"alert-{i}",
        fingerprint=f"fp-{i}",
        rule=rule,
        metric="system.cpu.utilization",
        attributes={"cpu.logical_number": str(i)},
        severity=Severity.WARNING,
        state=state,
        starts_at=1_700_000_000.0 + i,
        message=f"alert number {i}",
        host=host,
        ends_at=None if state == "firing" else 1_700_000_100.0 + i,
        value=0.95,
        threshold=0.9,
    )


def validate(doc: Any, schema: str) -> None:
    """Check a payload against its JSON Schema in docs/schemas/."""
    jsonschema.validate(doc, json.loads((SCHEMAS / f"{schema}.json").read_text()))


class FakeAlertManager:
    """An AlertSink that also offers SilenceControl and `add_channel`, as the alert manager does.

    `route` sends an alert to the channels unless a silence matches every one of its matchers
    against the alert's fields or labels (the documented matching of SilenceControl).
    """

    def __init__(self) -> None:
        self.channels: list[Channel] = []
        self.findings: list[Finding] = []
        self.firing: dict[str, Alert] = {}
        self.suppressed: list[Alert] = []
        self._silences: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def submit(self, finding: Finding) -> None:
        self.findings.append(finding)

    def add_channel(self, channel: Channel) -> None:
        self.channels.append(channel)

    def add_silence(
        self, matchers: Mapping[str, str], duration: float, comment: str = "", created_by: str = ""
    ) -> str:
        silence_id = f"s-{next(self._ids)}-{uuid.uuid4().hex[:6]}"
        self._silences[silence_id] = {
            "id": silence_id,
            "matchers": dict(matchers),
            "ends_at": time.time() + duration,
            "comment": comment,
            "created_by": created_by,
        }
        return silence_id

    def remove_silence(self, silence_id: str) -> bool:
        return self._silences.pop(silence_id, None) is not None

    def silences(self) -> list[dict[str, Any]]:
        now = time.time()
        return [s for s in self._silences.values() if s["ends_at"] > now]

    def active_alerts(self) -> list[Alert]:
        return list(self.firing.values())

    def _silenced(self, alert: Alert) -> bool:
        fields = {k: str(v) for k, v in alert.to_dict().items() if not isinstance(v, dict)}
        fields.update(alert.labels)
        return any(all(fields.get(k) == v for k, v in s["matchers"].items()) for s in self.silences())

    async def route(self, alert: Alert) -> bool:
        """Send one alert to every channel unless silenced; return whether it was sent."""
        if alert.state == "firing":
            self.firing[alert.fingerprint] = alert
        else:
            self.firing.pop(alert.fingerprint, None)
        if self._silenced(alert):
            self.suppressed.append(alert)
            return False
        for channel in self.channels:
            await channel.send(Notification([alert]))
        return True


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Poll `predicate` until true; fail the test after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)


def run(main: Callable[[], Awaitable[None]], timeout: float = 90.0) -> None:
    """Run an async test body on asyncio (nats-py is asyncio-only), bounded in time."""

    async def bounded() -> None:
        with anyio.fail_after(timeout):
            await main()

    anyio.run(bounded, backend="asyncio")
