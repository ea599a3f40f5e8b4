"""Where each followed file was read up to, kept in the state directory across restarts.

One small JSON file per followed path: its inode, the offset of the first byte not yet matched
and the bytes just before it. At start a follower resumes there when the file is still the same
one (same inode, at least that long, the same bytes before the offset); a file rotated or
truncated meanwhile is read from its start (what is still in it), never from a wrong offset.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from otel_sysops._private import private_dir, write_private

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Position:
    """A point in one file: inode, byte offset, and up to 64 bytes before the offset."""

    inode: int
    offset: int
    tail: bytes


class PositionFile:
    """The saved position of one followed path (reads and writes never raise: a failure is logged)."""

    def __init__(self, state_dir: Path, path: Path) -> None:
        self.path = path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
        self.file = state_dir / f"{path.name[:40]}-{digest}.json"
        self._state_dir = state_dir
        self._saved: Position | None = None
        self._warned = False

    def load(self) -> Position | None:
        """Return the saved position, or None (none saved, unreadable, or for another path)."""
        try:
            data = json.loads(self.file.read_bytes())
            if data.get("path") != str(self.path):
                return None
            position = Position(int(data["inode"]), int(data["offset"]), bytes.fromhex(data["tail"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _log.warning(
                "log position %s cannot be read (%s); %s is read from its end", self.file, exc, self.path
            )
            return None
        if position.offset < 0 or len(position.tail) > position.offset:
            return None
        self._saved = position
        return position

    def save(self, position: Position | None) -> None:
        """Write `position` if it changed since the last save."""
        if position is None or position == self._saved:
            return
        payload = {"path": str(self.path), "inode": position.inode, "offset": position.offset}
        payload["tail"] = position.tail.hex()
        try:
            private_dir(self._state_dir)
            write_private(self.file, json.dumps(payload).encode())
        except OSError as exc:
            if not self._warned:
                _log.warning("log position of %s cannot be saved in %s: %s", self.path, self._state_dir, exc)
                self._warned = True
            return
        self._saved = position
