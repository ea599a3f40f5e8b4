"""The bridge's two schedules: heartbeats while connected, and the inventory when it changes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from otel_sysops.inventory import inventory_hash
from otel_sysops.settings import NatsSettings

from ._outbox import Outbox
from ._payloads import AgentView, Subjects, encode, heartbeat_payload

if TYPE_CHECKING:
    from nats.aio.client import Client

_log = logging.getLogger("otel_sysops.bridge._service")

InventorySource = Callable[[], dict[str, Any]]


class Heartbeats:
    """Publish `{prefix}.{host}.heartbeat` every `heartbeat_interval` while connected; never held."""

    def __init__(
        self,
        agent: AgentView,
        host: str,
        settings: NatsSettings,
        subjects: Subjects,
        stats: dict[str, int],
        bridge_stats: Callable[[], dict[str, Any]],
    ) -> None:
        self.agent = agent
        self.host = host
        self.interval = settings.heartbeat_interval
        self.subjects = subjects
        self.stats = stats
        self._bridge_stats = bridge_stats

    async def run(self, nc: Client) -> None:
        """Beat until cancelled (the session ends it with the connection)."""
        import nats.errors

        while True:
            if nc.is_connected:
                doc = heartbeat_payload(self.agent, self.host, self.interval, self._bridge_stats())
                try:
                    await nc.publish(self.subjects.heartbeat, encode(doc))
                    self.stats["heartbeats"] += 1
                except nats.errors.Error as exc:
                    # Heartbeats are not held: a stale one is worthless once the link is back.
                    _log.debug("heartbeat not sent: %s", exc)
            await anyio.sleep(self.interval)


class InventorySchedule:
    """Compute the inventory every `inventory_interval`; queue it when it changed or is due."""

    def __init__(
        self,
        source: InventorySource,
        settings: NatsSettings,
        subjects: Subjects,
        outbox: Outbox,
        notify: Callable[[], None],
    ) -> None:
        self.source = source
        self.settings = settings
        self.subjects = subjects
        self.outbox = outbox
        self._notify = notify
        self.hash: str | None = None
        self._sent_at: float | None = None

    async def collect(self) -> dict[str, Any]:
        """Return the inventory document with its hash (computed off the loop)."""
        doc = await anyio.to_thread.run_sync(self.source)
        doc.setdefault("hash", inventory_hash(doc))
        return doc

    async def run(self) -> None:
        """Collect and offer forever; a failing reader is logged and retried next interval."""
        while True:
            try:
                doc = await self.collect()
            except Exception as exc:  # noqa: BLE001 - a broken reader must not stop the bridge
                _log.warning("inventory failed: %s", exc)
            else:
                self.offer(doc)
            await anyio.sleep(self.settings.inventory_interval)

    def offer(self, doc: dict[str, Any]) -> None:
        """Queue the inventory when it changed, or when the forced interval passed."""
        now = time.monotonic()
        due = self._sent_at is None or now - self._sent_at >= self.settings.inventory_force_interval
        if doc["hash"] == self.hash and not due:
            return
        self.outbox.put_latest(self.subjects.inventory, encode(doc), "inventory")
        self.hash, self._sent_at = doc["hash"], now
        self._notify()
