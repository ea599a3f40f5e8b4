"""The bounded, ordered buffer of messages waiting for NATS, optionally mirrored to a spool directory."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from otel_sysops._private import private_dir, write_private

_log = logging.getLogger(__name__)

_SUFFIX = ".msg"


@dataclass(frozen=True, slots=True)
class Message:
    """One message to publish; `seq` orders delivery, `msg_id` becomes the `Nats-Msg-Id` header."""

    seq: int
    subject: str
    payload: bytes
    kind: str
    msg_id: str | None = None


class Outbox:
    """Hold messages in order until they are acknowledged; drop (and count) the oldest past `capacity`.

    With a spool directory every held message is also a file there (`<seq>.msg`: one JSON header
    line, then the payload), written by rename so a crash never leaves half a message; the files of
    a previous run are loaded at start, so a restart loses nothing.
    """

    def __init__(self, capacity: int, spool: Path | None = None) -> None:
        self.capacity = capacity
        self.spool = spool
        self.dropped = 0
        self.spool_errors = 0
        self._lock = threading.Lock()
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._seq = 0
        if spool is not None:
            private_dir(spool)
            self._load()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def put(self, subject: str, payload: bytes, kind: str, msg_id: str | None = None) -> Message:
        """Append a message (after every held one)."""
        with self._lock:
            return self._append(subject, payload, kind, msg_id)

    def put_latest(self, subject: str, payload: bytes, kind: str) -> Message:
        """Append a message and drop any held message of the same kind: only the latest matters."""
        with self._lock:
            stale = [m for m in self._items.values() if m.kind == kind]
            for message in stale:
                self._remove(message.seq)
            return self._append(subject, payload, kind, None)

    def peek(self, limit: int) -> list[Message]:
        """Return up to `limit` of the oldest held messages, oldest first (they stay held)."""
        with self._lock:
            out: list[Message] = []
            for message in self._items.values():
                if len(out) >= limit:
                    break
                out.append(message)
            return out

    def ack(self, messages: Iterable[Message]) -> None:
        """Forget delivered messages (those dropped meanwhile are ignored)."""
        with self._lock:
            for message in messages:
                self._remove(message.seq)

    def kinds(self) -> dict[str, int]:
        """Return how many messages of each kind are held."""
        with self._lock:
            out: dict[str, int] = {}
            for message in self._items.values():
                out[message.kind] = out.get(message.kind, 0) + 1
            return out

    # -- internals (called with the lock held) --------------------------------------------------

    def _append(self, subject: str, payload: bytes, kind: str, msg_id: str | None) -> Message:
        self._seq += 1
        message = Message(self._seq, subject, payload, kind, msg_id)
        while len(self._items) >= self.capacity:
            oldest = next(iter(self._items))
            self._remove(oldest)
            self.dropped += 1
        self._items[message.seq] = message
        self._write(message)
        return message

    def _remove(self, seq: int) -> None:
        if self._items.pop(seq, None) is None or self.spool is None:
            return
        try:
            (self.spool / f"{seq:016d}{_SUFFIX}").unlink(missing_ok=True)
        except OSError as exc:
            self.spool_errors += 1
            _log.warning("cannot remove spooled message %d: %s", seq, exc)

    def _write(self, message: Message) -> None:
        if self.spool is None:
            return
        header = {"subject": message.subject, "kind": message.kind, "msg_id": message.msg_id}
        path = self.spool / f"{message.seq:016d}{_SUFFIX}"
        try:
            write_private(path, json.dumps(header).encode() + b"\n" + message.payload)
        except OSError as exc:
            # The message is still held in memory; only a restart would lose it.
            self.spool_errors += 1
            _log.warning("cannot spool message %d to %s: %s", message.seq, self.spool, exc)

    def _load(self) -> None:
        assert self.spool is not None
        for tmp in self.spool.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        paths = sorted(self.spool.glob(f"*{_SUFFIX}"))
        for path in paths:
            try:
                seq = int(path.stem)
                head, _, payload = path.read_bytes().partition(b"\n")
                header = json.loads(head)
                message = Message(seq, str(header["subject"]), payload, str(header["kind"]), header["msg_id"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.spool_errors += 1
                _log.warning("setting aside unreadable spooled message %s (.bad): %s", path.name, exc)
                path.replace(path.with_suffix(".bad"))
                continue
            self._items[seq] = message
            self._seq = max(self._seq, seq)
        while len(self._items) > self.capacity:
            self._remove(next(iter(self._items)))
            self.dropped += 1
        if self._items:
            _log.info("loaded %d undelivered message(s) from %s", len(self._items), self.spool)
