"""Live updates: each event goes to every subscriber's bounded queue (a slow client loses events, counted)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

# Events held per subscriber before new ones are dropped for it.
QUEUE = 1000


class Broadcaster:
    """Fan events out to the open event streams."""

    def __init__(self) -> None:
        self._subscribers: set[MemoryObjectSendStream[dict[str, Any]]] = set()
        self.dropped = 0
        self.closed = False

    def publish(self, event: dict[str, Any]) -> None:
        """Queue one event for every subscriber (never waits)."""
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                self.dropped += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(send)

    def publish_many(self, events: Iterable[dict[str, Any]]) -> None:
        """Queue several events."""
        for event in events:
            self.publish(event)

    def close(self) -> None:
        """End every stream."""
        self.closed = True
        for send in list(self._subscribers):
            send.close()
        self._subscribers.clear()

    async def stream(self, keepalive: float = 15.0) -> AsyncIterator[bytes]:
        """Yield Server-Sent Events until the client goes away or the hub stops."""
        send, receive = anyio.create_memory_object_stream[dict[str, Any]](QUEUE)
        self._subscribers.add(send)
        try:
            yield b"retry: 2000\n\n"
            async with receive:
                while not self.closed:
                    event = await _next(receive, keepalive)
                    if event is None:
                        yield b": keepalive\n\n"
                        continue
                    if event.get("type") == "end":
                        return
                    yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event)}\n\n".encode()
        finally:
            self._subscribers.discard(send)
            send.close()


async def _next(receive: MemoryObjectReceiveStream[dict[str, Any]], wait: float) -> dict[str, Any] | None:
    with anyio.move_on_after(wait):
        try:
            return await receive.receive()
        except anyio.EndOfStream:
            return {"type": "end"}
    return None
