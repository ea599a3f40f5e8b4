"""The hub: JetStream durable consumers feeding the fleet state, down checks, the HTTP API, alerts out."""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from otel_sysops.alerts import AlertManager
from otel_sysops.bridge import connect, host_token
from otel_sysops.errors import ConfigError, SysopsError
from otel_sysops.settings import Settings

from ._events import Broadcaster
from ._state import FleetState, Incoming
from ._store import Store

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

_log = logging.getLogger("otel_sysops.hub")


def build_manager(settings: Settings) -> AlertManager:
    """Return the hub's alert manager: the agents' channel types, from the `[alerts]` section."""
    from otel_sysops.alerts import build_manager as build

    return build(settings)


class Hub:
    """Consume the fleet's subjects into the database and serve them; run until cancelled."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.cfg = settings.hub
        self.prefix = settings.nats.subject_prefix
        self.store = store or Store(self.cfg.database_url())
        self.manager = build_manager(settings) if settings.alerts.enabled else None
        self.state = FleetState(
            self.store, self.cfg.missed_heartbeats, self.manager.submit if self.manager else None
        )
        self.state.resubmit_down()
        self.events = Broadcaster()
        self.nc: Client | None = None
        # Down checks wait until both consumers have read what was stored while the hub was away.
        self.caught_up: dict[str, bool] = {"main": False, "heartbeats": False}
        self.started = time.time()
        self.address: tuple[str, int] | None = None
        self.api: Any = None

    @property
    def nats_url(self) -> str:
        return self.settings.nats.url or self.cfg.nats_url

    # -- NATS -----------------------------------------------------------------------------------

    async def _connect(self) -> Client:
        nats_settings = self.settings.nats
        if nats_settings.url is None:
            nats_settings = nats_settings.model_copy(update={"url": self.cfg.nats_url})
        return await connect(nats_settings, name="otel-sysops hub")

    async def ensure_streams(self, js: JetStreamContext) -> None:
        """Make (or widen) the two streams: alerts + inventory, and the latest heartbeat per host."""
        import nats.js.errors
        from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

        wanted = {
            self.cfg.stream: StreamConfig(
                name=self.cfg.stream,
                subjects=[f"{self.prefix}.*.alerts", f"{self.prefix}.*.inventory"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_age=self.cfg.stream_max_age,
                duplicate_window=120.0,
                discard=DiscardPolicy.OLD,
            ),
            self.cfg.heartbeat_stream: StreamConfig(
                name=self.cfg.heartbeat_stream,
                subjects=[f"{self.prefix}.*.heartbeat"],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                max_msgs_per_subject=1,
                max_age=86400.0,
                discard=DiscardPolicy.OLD,
            ),
        }
        for name, config in wanted.items():
            try:
                info = await js.stream_info(name)
            except nats.js.errors.NotFoundError:
                try:
                    await js.add_stream(config)
                except nats.js.errors.APIError as exc:
                    raise ConfigError(
                        f"hub.stream: cannot create stream {name} for {', '.join(config.subjects or [])} "
                        f"({exc.description}); point hub.stream/hub.heartbeat_stream at the existing stream"
                    ) from exc
                _log.info("created JetStream stream %s for %s", name, ", ".join(config.subjects or []))
                continue
            have = set(info.config.subjects or [])
            missing = [s for s in config.subjects or [] if s not in have]
            if missing:
                info.config.subjects = sorted(have | set(missing))
                try:
                    await js.update_stream(info.config)
                except nats.js.errors.APIError as exc:
                    raise ConfigError(
                        f"hub.stream: cannot add {', '.join(missing)} to stream {name} ({exc.description})"
                    ) from exc
                _log.info("stream %s now also covers %s", name, ", ".join(missing))

    async def _consume(self, js: JetStreamContext, stream: str, durable: str, which: str) -> None:
        """Read a stream through a durable push consumer; apply and acknowledge in batches.

        A message is acknowledged only after its batch is committed, so whatever the hub had not
        stored when it stopped is delivered again to the next hub with the same durable name.
        """
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        pending: list[Any] = []
        wake = anyio.Event()

        async def on_message(msg: Any) -> None:
            pending.append(msg)
            wake.set()

        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=60.0,
            max_ack_pending=100_000,
        )
        sub = await js.subscribe(
            "",
            stream=stream,
            durable=durable,
            config=config,
            cb=on_message,
            manual_ack=True,
            pending_msgs_limit=500_000,
            pending_bytes_limit=1024 * 1024 * 1024,
        )
        batch_size = self.cfg.fetch_batch
        try:
            while True:
                with anyio.move_on_after(1.0):
                    await wake.wait()
                wake = anyio.Event()
                if not pending:
                    self.caught_up[which] = True
                    continue
                while pending:
                    msgs, pending[:] = pending[:batch_size], pending[batch_size:]
                    batch = [Incoming(m.subject.rsplit(".", 1)[-1], m.data, _stored_at(m)) for m in msgs]
                    events = await anyio.to_thread.run_sync(self.state.apply, batch)
                    for m in msgs:
                        await m.ack()
                    self.events.publish_many(events)
                    # Caught up when less than one batch is left: down checks run on a consumer that
                    # keeps up, not on one replaying a backlog.
                    self.caught_up[which] = len(pending) < batch_size and _pending(msgs[-1]) < batch_size
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                await sub.unsubscribe()

    async def _checker(self) -> None:
        while True:
            await anyio.sleep(self.cfg.check_interval)
            if all(self.caught_up.values()):
                self.events.publish_many(await anyio.to_thread.run_sync(self.state.check))

    async def _pruner(self) -> None:
        while True:
            cutoff = time.time() - self.cfg.history_days * 86400
            removed = await anyio.to_thread.run_sync(self.store.prune, cutoff)
            if removed:
                _log.info("pruned %d resolved alert(s) older than %g days", removed, self.cfg.history_days)
            await anyio.sleep(3600)

    async def _ticker(self) -> None:
        while True:
            await anyio.sleep(2.0)
            with self.state.lock:
                down = sum(1 for h in self.state.hosts.values() if h.down)
                self.events.publish(
                    {"type": "fleet", "hosts": len(self.state.hosts), "down": down, "time": time.time()}
                )

    # -- control plane --------------------------------------------------------------------------

    async def control(self, host: str, op: str, request: dict[str, Any]) -> dict[str, Any]:
        """Send one control request to an agent; return its reply (or an error reply)."""
        import nats.errors

        if self.nc is None or not self.nc.is_connected:
            return {"ok": False, "error": "the hub is not connected to NATS"}
        subject = f"{self.prefix}.{host_token(host)}.control.{op}"
        try:
            msg = await self.nc.request(
                subject, json.dumps(request).encode(), timeout=self.cfg.control_timeout
            )
        except nats.errors.NoRespondersError:
            return {"ok": False, "error": "no agent answers on " + subject}
        except (nats.errors.TimeoutError, TimeoutError):
            return {"ok": False, "error": f"no reply within {self.cfg.control_timeout:g}s"}
        try:
            answer = json.loads(msg.data)
        except ValueError:
            return {"ok": False, "error": "the agent's reply is not JSON"}
        return answer if isinstance(answer, dict) else {"ok": False, "error": "unexpected reply"}

    # -- running --------------------------------------------------------------------------------

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Connect, serve, consume; report the bound HTTP address once listening."""
        from ._api import serve

        try:
            self.nc = await self._connect()
        except Exception as exc:
            raise SysopsError(f"hub: {exc}") from exc
        js = self.nc.jetstream(timeout=10.0)
        try:
            if self.cfg.create_streams:
                await self.ensure_streams(js)
            async with anyio.create_task_group() as tg:
                if self.manager is not None:
                    tg.start_soon(self.manager.run)
                self.address = await tg.start(serve, self)
                tg.start_soon(self._consume, js, self.cfg.stream, self.cfg.durable, "main")
                tg.start_soon(
                    self._consume,
                    js,
                    self.cfg.heartbeat_stream,
                    f"{self.cfg.durable}-heartbeats",
                    "heartbeats",
                )
                tg.start_soon(self._checker)
                tg.start_soon(self._pruner)
                tg.start_soon(self._ticker)
                _log.info(
                    "hub serving on http://%s:%d, consuming %s.* from %s (database %s)",
                    *self.address,
                    self.prefix,
                    self.nats_url,
                    self.store.dialect,
                )
                task_status.started(self.address)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if self.manager is not None:
                    await self.manager.aclose(3.0)
                self.events.close()
                if self.nc is not None and not self.nc.is_closed:
                    await self.nc.close()


def _stored_at(msg: Any) -> float:
    """Return when the server stored a JetStream message (the hub's clock as a fallback)."""
    try:
        return float(msg.metadata.timestamp.timestamp())
    except (AttributeError, ValueError, TypeError):
        return time.time()


def _pending(msg: Any) -> int:
    """Return how many messages the consumer has not been sent yet after this one."""
    try:
        return int(msg.metadata.num_pending)
    except (AttributeError, ValueError, TypeError):
        return 0
