"""Drain the outbox into NATS while connected: JetStream for alerts when a stream covers them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from otel_sysops.settings import NatsSettings

from ._outbox import Message, Outbox
from ._payloads import Subjects

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js import JetStreamContext

_log = logging.getLogger("otel_sysops.bridge._service")

# Messages published per flush on the core path.
_BATCH = 256
# How often the publisher re-asks whether a JetStream stream covers the alert subject.
_STREAM_RECHECK = 300.0


class Publisher:
    """Publish the outbox in order; forget a message only once the server confirmed it."""

    def __init__(
        self,
        settings: NatsSettings,
        subjects: Subjects,
        outbox: Outbox,
        stats: dict[str, int],
        on_error: Callable[[Exception], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.subjects = subjects
        self.outbox = outbox
        self.stats = stats
        self._on_error = on_error
        self._wake: anyio.Event | None = None

    def notify(self) -> None:
        """Wake the publisher: something was queued."""
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Prepare the wake-up event; call on the loop before the first `notify`."""
        self._wake = anyio.Event()

    async def _wait_for_work(self) -> None:
        if self._wake is None:
            self._wake = anyio.Event()
        with anyio.move_on_after(1.0):
            await self._wake.wait()
        self._wake = anyio.Event()

    async def _has_stream(self, js: JetStreamContext) -> bool:
        import nats.errors
        import nats.js.errors

        try:
            name = await js.find_stream_name_by_subject(self.subjects.alerts)
        except nats.js.errors.NotFoundError:
            return False
        except (nats.errors.Error, TimeoutError) as exc:
            # No JetStream on the server (no responders) or no permission for its API.
            _log.debug("no JetStream stream lookup for %s: %s", self.subjects.alerts, exc)
            return False
        _log.info("alerts go to JetStream stream %s (acknowledged, de-duplicated by id)", name)
        return True

    async def run(self, nc: Client) -> None:
        """Publish until cancelled (the session ends it when the connection closes)."""
        import nats.errors
        import nats.js.errors

        js = nc.jetstream(timeout=self.settings.publish_timeout)
        checked = -math.inf
        has_stream = False
        while True:
            batch = self.outbox.peek(_BATCH)
            if not batch:
                await self._wait_for_work()
                continue
            if not nc.is_connected:
                await anyio.sleep(0.05)
                continue
            if self.settings.jetstream and time.monotonic() - checked > _STREAM_RECHECK:
                has_stream = await self._has_stream(js)
                checked = time.monotonic()
            try:
                await self._deliver(nc, js, batch, has_stream)
            except nats.js.errors.NoStreamResponseError:
                checked = -math.inf  # the stream went away: look again, then publish on core
            except nats.js.errors.APIError as exc:
                # The stream refuses (full with discard=new, sealed, ...): core publish for a while
                # rather than holding every later alert behind this one.
                _log.warning("JetStream refused an alert (%s); publishing alerts on core NATS", exc)
                has_stream, checked = False, time.monotonic()
            except (nats.errors.Error, TimeoutError) as exc:
                await self._on_error(exc)
                await anyio.sleep(min(1.0, self.settings.reconnect_wait))

    async def _deliver(
        self, nc: Client, js: JetStreamContext, batch: list[Message], has_stream: bool
    ) -> None:
        """Publish a batch in order; forget each message once the server confirmed it."""
        import nats.errors

        core: list[Message] = []
        for message in batch:
            headers = {"Nats-Msg-Id": message.msg_id} if message.msg_id else None
            if message.kind == "alert" and has_stream:
                if core:
                    await self._flush(nc, core)
                    core = []
                await js.publish(message.subject, message.payload, headers=headers)
                self.outbox.ack([message])
                self.stats["published_jetstream"] += 1
                continue
            try:
                await nc.publish(message.subject, message.payload, headers=headers)
            except nats.errors.MaxPayloadError:
                # It will never fit: drop it (counted) instead of blocking everything behind it.
                _log.error(
                    "dropping a %d-byte %s message: larger than the server's max_payload",
                    len(message.payload),
                    message.kind,
                )
                self.outbox.ack([message])
                self.stats["rejected"] += 1
                continue
            core.append(message)
        if core:
            await self._flush(nc, core)

    async def _flush(self, nc: Client, sent: list[Message]) -> None:
        # A PING/PONG round trip: the server has processed everything published before it.
        await nc.flush(timeout=math.ceil(self.settings.publish_timeout))
        self.outbox.ack(sent)
        self.stats["published"] += len(sent)
