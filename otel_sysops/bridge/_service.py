"""The NATS bridge service: connection supervision; it runs the publisher, the heartbeats, the
inventory schedule and the control plane (each its own part) inside each session.

Nothing else in the agent waits on NATS: alerts and inventory are put in the outbox (a bounded,
ordered buffer, optionally spooled to disk) and the publisher drains it while connected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.alerts import Alert, Notification, Severity, summary_alert
from otel_sysops.errors import ConfigError
from otel_sysops.settings import NatsSettings

from ._connect import NatsError, connect
from ._control import ControlPlane
from ._outbox import Outbox
from ._payloads import CONTROL_OPS, AgentView, Subjects, alert_msg_id, alert_payload, encode
from ._publish import Publisher
from ._schedule import Heartbeats, InventorySchedule, InventorySource

if TYPE_CHECKING:
    from nats.aio.client import Client

_log = logging.getLogger(__name__)

# Longest wait between reconnect attempts while the server is merely unreachable.
_UNREACHABLE_CAP = 30.0
# Why an unauthenticated connection takes no silence or reload requests.
_ANONYMOUS = (
    "silence and reload requests need an authenticated NATS connection (nats.token, user/password, "
    "nkey_seed or credentials); set nats.allow_anonymous_control = true to accept them anyway"
)


class NatsAlertChannel:
    """The alert manager's channel to NATS: each alert of a notification goes on `{prefix}.{host}.alerts`.

    `send` only enqueues (the bridge publishes), so it never waits on the network.
    """

    name = "nats"
    min_severity = Severity.INFO
    rate_limited = False  # a machine channel: every alert, and any held-back count as an alert

    def __init__(self, bridge: NatsBridge) -> None:
        self._bridge = bridge

    async def send(self, notification: Notification) -> None:
        for alert in notification.alerts:
            self._bridge.publish_alert(alert)
        summary = summary_alert(notification, self._bridge.host, time.time())
        if summary is not None:
            self._bridge.publish_alert(summary)

    async def aclose(self) -> None:
        """Nothing to release: the bridge owns the connection."""


class NatsBridge:
    """Keep a connection to NATS and publish through it; a `Service` of the agent."""

    name = "nats"

    def __init__(
        self,
        settings: NatsSettings,
        host: str,
        agent: AgentView | None = None,
        *,
        inventory: InventorySource | None = None,
    ) -> None:
        self.settings = settings
        self.host = host
        self.agent = agent
        self.subjects = Subjects(settings.subject_prefix, host)
        try:
            self.outbox = Outbox(settings.buffer_size, settings.spool_dir)
        except OSError as exc:
            raise ConfigError(
                f"nats.spool_dir: {settings.spool_dir} cannot be used ({exc.strerror})"
            ) from exc
        self.channel = NatsAlertChannel(self)
        self.stats: dict[str, int] = {
            "published": 0,
            "published_jetstream": 0,
            "heartbeats": 0,
            "connects": 0,
            "connect_failures": 0,
            "control_requests": 0,
            "rejected": 0,
        }
        self.last_error: NatsError | None = None
        self._nc: Client | None = None
        self._connecting = False
        self._closing = False
        self._logged: set[str] = set()
        self.publisher = Publisher(settings, self.subjects, self.outbox, self.stats, self._on_error)
        self.inventory = (
            InventorySchedule(inventory, settings, self.subjects, self.outbox, self.publisher.notify)
            if inventory is not None
            else None
        )
        self.heartbeats = (
            Heartbeats(agent, host, settings, self.subjects, self.stats, self.bridge_stats)
            if agent is not None
            else None
        )
        self.control = ControlPlane(
            agent,
            host,
            self.stats,
            self.bridge_stats,
            self.inventory.collect if self.inventory is not None else None,
            refuse_changes=None if settings.authenticated or settings.allow_anonymous_control else _ANONYMOUS,
        )

    # -- what producers call ------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Return whether a connection is up now."""
        return self._nc is not None and self._nc.is_connected

    def publish_alert(self, alert: Alert) -> None:
        """Queue one alert for `{prefix}.{host}.alerts`; return at once."""
        self.outbox.put(self.subjects.alerts, encode(alert_payload(alert)), "alert", alert_msg_id(alert))
        self.publisher.notify()

    def status(self) -> dict[str, Any]:
        """Return the `control.status` reply: health, collectors, active alerts and silences."""
        return self.control.status()

    def bridge_stats(self) -> dict[str, Any]:
        """Return the bridge's own counters (in heartbeats and status replies)."""
        return {
            "connected": self.connected,
            "buffered": len(self.outbox),
            "dropped": self.outbox.dropped,
            "spool_errors": self.outbox.spool_errors,
            **self.stats,
            "last_error": str(self.last_error) if self.last_error else None,
        }

    def register_metrics(self, meter: Meter) -> None:
        """Export the bridge's state as `sysops.nats.*` instruments (callbacks read counters only)."""

        def connected(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(1 if self.connected else 0)]

        def buffered(_: CallbackOptions) -> Iterable[Observation]:
            held = self.outbox.kinds()
            return [
                Observation(held.get(kind, 0), {"sysops.nats.kind": kind}) for kind in ("alert", "inventory")
            ]

        def dropped(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(self.outbox.dropped, {"sysops.nats.reason": "buffer_full"}),
                Observation(self.stats["rejected"], {"sysops.nats.reason": "max_payload"}),
            ]

        def published(_: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(self.stats["published"], {"sysops.nats.path": "core"}),
                Observation(self.stats["published_jetstream"], {"sysops.nats.path": "jetstream"}),
                Observation(self.stats["heartbeats"], {"sysops.nats.path": "heartbeat"}),
            ]

        def failures(_: CallbackOptions) -> Iterable[Observation]:
            return [Observation(self.stats["connect_failures"])]

        meter.create_observable_gauge(
            "sysops.nats.connected", [connected], "1", "Whether the NATS bridge is connected (1) or not (0)"
        )
        meter.create_observable_up_down_counter(
            "sysops.nats.buffered", [buffered], "{message}", "Messages held for NATS, by kind"
        )
        meter.create_observable_counter(
            "sysops.nats.dropped",
            [dropped],
            "{message}",
            "Messages dropped: buffer full, or over max_payload",
        )
        meter.create_observable_counter(
            "sysops.nats.published", [published], "{message}", "Messages delivered to NATS, by path"
        )
        meter.create_observable_counter(
            "sysops.nats.connect.failures", [failures], "{attempt}", "Failed NATS connection attempts"
        )

    @property
    def inventory_hash(self) -> str | None:
        """Return the hash of the inventory last queued (None before the first)."""
        return self.inventory.hash if self.inventory is not None else None

    # -- the service ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect (and reconnect) forever; compute the inventory on its own schedule."""
        self.publisher.start()
        async with anyio.create_task_group() as tg:
            if self.inventory is not None:
                tg.start_soon(self.inventory.run)
            tg.start_soon(self._connection_loop)

    async def aclose(self, timeout: float) -> None:
        """Give held messages `timeout` seconds to go out, then drain the connection."""
        deadline = time.monotonic() + timeout
        self._closing = True
        nc = self._nc
        if nc is None:
            return
        with anyio.move_on_after(max(0.0, timeout * 0.8)):
            while len(self.outbox) and nc.is_connected:
                await anyio.sleep(0.02)
        if not nc.is_closed:
            with anyio.move_on_after(max(0.1, deadline - time.monotonic())):
                await nc.drain()

    # -- connection -----------------------------------------------------------------------------

    def _backoff(self, kind: str, failures: int) -> float:
        base = self.settings.reconnect_wait
        if kind == "unreachable":
            return float(min(base * 1.5 ** (failures - 1), _UNREACHABLE_CAP, self.settings.max_backoff))
        # Refused credentials or a TLS mismatch will not fix themselves soon: back off further.
        return float(min(base * 2 ** (failures - 1), self.settings.max_backoff))

    async def _connection_loop(self) -> None:
        failures = 0
        reported: str | None = None
        while not self._closing:
            closed = anyio.Event()

            async def on_closed(event: anyio.Event = closed) -> None:
                event.set()

            self._connecting = True
            try:
                nc = await connect(
                    self.settings,
                    name=f"otel-sysops {self.host}",
                    error_cb=self._on_error,
                    closed_cb=on_closed,
                )
            except Exception as exc:  # noqa: BLE001 - nothing may end the loop: NATS is never fatal
                if not isinstance(exc, NatsError):
                    exc = NatsError("unexpected", f"connecting to NATS failed: {type(exc).__name__}: {exc}")
                failures += 1
                self.stats["connect_failures"] += 1
                self.last_error = exc
                delay = self._backoff(exc.kind, failures)
                if exc.kind != reported:
                    # One line per kind of failure, not one per attempt.
                    level = logging.WARNING if exc.kind == "unreachable" else logging.ERROR
                    _log.log(level, "%s; retrying with backoff (next in %.1fs), alerts are held", exc, delay)
                    reported = exc.kind
                else:
                    _log.debug("NATS connect attempt %d failed: %s", failures, exc)
                await anyio.sleep(delay)
                continue
            finally:
                self._connecting = False
            if failures:
                _log.info("connected to NATS after %d failed attempt(s)", failures)
            else:
                _log.info(
                    "connected to NATS at %s",
                    nc.connected_url.netloc.rpartition("@")[2] if nc.connected_url else "?",
                )
            if not self.settings.authenticated and "anonymous" not in self._logged:
                self._logged.add("anonymous")
                _log.warning(
                    "connected to NATS without credentials: %s",
                    "nats.allow_anonymous_control = true lets any client of the server silence alerts "
                    "and reload this agent"
                    if self.settings.allow_anonymous_control
                    else _ANONYMOUS,
                )
            failures, reported, self.last_error = 0, None, None
            self.stats["connects"] += 1
            await self._session(nc, closed)
            if self._closing:
                return
            _log.warning("lost the connection to NATS; reconnecting (alerts are held meanwhile)")

    async def _session(self, nc: Client, closed: anyio.Event) -> None:
        self._nc = nc
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.publisher.run, nc)
                if self.heartbeats is not None:
                    tg.start_soon(self.heartbeats.run, nc)
                    for op in CONTROL_OPS:
                        await nc.subscribe(self.subjects.control(op), cb=self.control.handle)
                await closed.wait()
                tg.cancel_scope.cancel()
        except Exception as exc:  # noqa: BLE001 - a failed session ends in a reconnect, never ends the agent
            _log.warning("NATS session failed: %s: %s", type(exc).__name__, exc)
        finally:
            self._nc = None
            if not nc.is_closed:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                    await nc.close()

    async def _on_error(self, exc: Exception) -> None:
        if self._connecting:
            return  # reported once by the connection loop
        text = f"{type(exc).__name__}: {exc}"
        level = logging.DEBUG if text in self._logged else logging.WARNING
        if len(self._logged) > 1000:
            self._logged.clear()  # bounded memory; a long-lived error is then logged once more
        self._logged.add(text)
        _log.log(level, "NATS: %s", text)
