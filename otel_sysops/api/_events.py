"""Live events for Server-Sent Events clients: bounded per-client queues, slow clients dropped.

`publish` is called on the tick thread and on the alert manager's callers: it encodes the event
once (only when someone listens) and hands the same bytes to every client without blocking.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

from otel_sysops.alerts import AlertChange, Notification

_log = logging.getLogger(__name__)

# A comment line every so often: proxies keep the stream open and a vanished client is noticed.
KEEPALIVE = 15.0


class StreamFull(Exception):  # noqa: N818 - a condition, not an error of the caller's making
    """Too many stream clients at once."""


class _Client:
    def __init__(self, size: int) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(size)
        self.dropped = False


class EventHub:
    """Fan events out to stream clients; an `AlertObserver` too (every alert change is an event)."""

    def __init__(self, max_clients: int = 8, queue_size: int = 64, keepalive: float = KEEPALIVE) -> None:
        self.max_clients = max_clients
        self.queue_size = queue_size
        self.keepalive = keepalive
        self._lock = threading.Lock()
        self._clients: list[_Client] = []
        self.published = 0
        self.dropped_clients = 0
        self._closed = False

    @property
    def listening(self) -> bool:
        """Return whether any client is connected (producers skip building events when not)."""
        return bool(self._clients)

    def clients(self) -> int:
        """Return how many clients are connected."""
        return len(self._clients)

    def publish(self, event: str, data: Any) -> None:
        """Send one event to every client; a client whose queue is full is dropped. Never blocks."""
        clients = self._clients
        if not clients:
            return
        payload = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()
        self.published += 1
        for client in clients:
            try:
                client.queue.put_nowait(payload)
            except queue.Full:
                self._drop(client)

    def _drop(self, client: _Client) -> None:
        with self._lock:
            if client not in self._clients:
                return
            self._clients = [c for c in self._clients if c is not client]
            self.dropped_clients += 1
        client.dropped = True
        _log.info("event stream: a client fell %d events behind and was dropped", self.queue_size)
        _end(client)

    def subscribe(self, hello: bytes = b"") -> Iterator[bytes]:
        """Return the byte stream of one client (raise StreamFull past `max_clients`)."""
        client = _Client(self.queue_size)
        with self._lock:
            if self._closed or len(self._clients) >= self.max_clients:
                raise StreamFull(f"too many event streams open (api.max_stream_clients = {self.max_clients})")
            self._clients = [*self._clients, client]
        return self._stream(client, hello)

    def _stream(self, client: _Client, hello: bytes) -> Iterator[bytes]:
        try:
            yield b"retry: 5000\n" + (hello or b": connected\n\n")
            while True:
                try:
                    chunk = client.queue.get(timeout=self.keepalive)
                except queue.Empty:
                    yield b": keepalive\n\n"
                    continue
                if chunk is None:
                    if client.dropped:
                        yield b"event: dropped\ndata: {}\n\n"
                    return
                yield chunk
        finally:
            with self._lock:
                self._clients = [c for c in self._clients if c is not client]

    def close(self) -> None:
        """End every stream."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            _end(client)

    # -- AlertObserver ----------------------------------------------------------------------

    def alert_changed(self, change: AlertChange) -> None:
        """Publish an `alert` event: the change kind and the alert."""
        if self._clients:
            self.publish("alert", {"change": change.kind, "alert": change.alert.to_dict()})

    def notification_sent(self, channel: str, notification: Notification, error: str | None) -> None:
        """Publish a `notification` event: the channel, the alerts' ids and the outcome."""
        if self._clients and notification.alerts:
            self.publish(
                "notification",
                {
                    "channel": channel,
                    "alerts": [a.id for a in notification.alerts],
                    "delivered": error is None,
                    "error": error,
                },
            )


def _end(client: _Client) -> None:
    """Queue the end marker, making room for it when the queue is full (its reader then stops)."""
    while True:
        try:
            client.queue.put_nowait(None)
            return
        except queue.Full:
            try:
                client.queue.get_nowait()
            except queue.Empty:
                continue
