"""Follow a text file across rotations (rename and copy-truncate) without losing or repeating lines."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ._positions import Position

# Bytes per read call.
CHUNK = 1 << 20
# Bytes one poll reads at most: a large backlog is read over several polls (`behind` is set).
POLL_BUDGET = 16 << 20
# Bytes before the read position remembered to recognise a truncated-and-rewritten file.
_TAIL = 64


class FileFollower:
    """Read the complete lines appended to a path since the last poll (blocking I/O: call off the loop).

    Rotation by rename: the path names a new inode. The old file is drained to EOF first (the writer
    may have written to it until the rename), then the new one is read from its start.
    Rotation by truncation (copytruncate): the size falls below the read position, or the bytes just
    before it changed; the file is read again from its start.
    """

    def __init__(
        self,
        path: Path,
        *,
        from_end: bool = True,
        max_line: int = 65536,
        budget: int = POLL_BUDGET,
        resume: Position | None = None,
    ) -> None:
        self.path = path
        self.max_line = max_line
        self.budget = budget
        self.rotations = 0
        self.truncations = 0
        # Set when a poll stopped at its byte budget before the end of the file: poll again soon.
        self.behind = False
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None
        self._pos = 0
        self._tail = b""
        self._partial = b""
        self._skipping = False
        # Where a previous run stopped: used when the file is still the one it read.
        self._resume = resume
        # Join an existing file at its end now; a file that appears later is read from its start.
        # One that exists but cannot be opened yet (permissions) is joined at its end when it can.
        self._join_at_end = from_end
        try:
            self._open(at_end=from_end)
        except OSError:
            pass  # poll() raises it, and the source reports it
        else:
            self._join_at_end = False

    @property
    def position(self) -> int:
        """Return the byte offset read up to in the current file."""
        return self._pos

    def snapshot(self) -> Position | None:
        """Return where to resume: the start of the first line not yet returned (None: no file)."""
        if self._fd is None or self._ino is None:
            return None
        offset = self._pos - len(self._partial)
        if not self._partial:
            tail = self._tail
        else:
            try:
                tail = os.pread(self._fd, min(_TAIL, offset), offset - min(_TAIL, offset))
            except OSError:
                return None
        return Position(self._ino[1], offset, tail)

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def poll(self) -> list[str]:
        """Return the lines completed since the last poll; raise OSError when the file cannot be read."""
        lines: list[str] = []
        if self._fd is None:
            if not self._open(at_end=self._join_at_end):
                self._join_at_end = False  # absent: when it appears, it is read from its start
                return lines
            self._join_at_end = False
        assert self._fd is not None
        # Truncation is judged on the file we hold (it may have been renamed away already), before
        # reading: bytes past our position may belong to the rewritten file.
        if os.fstat(self._fd).st_size < self._pos or not self._tail_intact():
            # An unfinished line's end was cut off with the rest: it is dropped, not half-reported.
            self._partial, self._skipping = b"", False
            self.truncations += 1
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._pos, self._tail = 0, b""
        self.behind = not self._drain(lines, self.budget)
        if self.behind:
            return lines  # rotation is looked at once the file we hold is read to its end
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return lines  # renamed away, the new file not created yet: keep reading the old one
        if (st.st_dev, st.st_ino) != self._ino:
            self._drain(lines, None)  # what the writer added since, before it reopened
            self._flush_partial(lines)
            self.close()
            self.rotations += 1
            if self._open(at_end=False):
                self.behind = not self._drain(lines, self.budget)
        return lines

    def _open(self, *, at_end: bool) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self._fd, self._ino = fd, (st.st_dev, st.st_ino)
        resume, self._resume = self._resume, None
        if resume is not None:
            # The file a previous run read: resume where it stopped if the file is still that one;
            # else (rotated or truncated meanwhile) read what it holds now, from its start.
            at = resume.offset
            same = st.st_ino == resume.inode and st.st_size >= at
            if same and os.pread(fd, len(resume.tail), at - len(resume.tail)) == resume.tail:
                self._pos = os.lseek(fd, at, os.SEEK_SET)
                self._tail = resume.tail
            else:
                self._pos, self._tail = 0, b""
        else:
            self._pos = os.lseek(fd, 0, os.SEEK_END) if at_end else 0
            self._tail = (
                os.pread(fd, min(_TAIL, self._pos), self._pos - min(_TAIL, self._pos)) if at_end else b""
            )
        self._partial, self._skipping = b"", False
        return True

    def _tail_intact(self) -> bool:
        if not self._tail or self._fd is None:
            return True
        try:
            return os.pread(self._fd, len(self._tail), self._pos - len(self._tail)) == self._tail
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                return False
            raise

    def _drain(self, lines: list[str], budget: int | None) -> bool:
        """Read to the end of the file, or until `budget` bytes; return whether the end was reached."""
        assert self._fd is not None
        done = 0
        while budget is None or done < budget:
            data = os.read(self._fd, CHUNK if budget is None else min(CHUNK, budget - done))
            if not data:
                return True
            done += len(data)
            self._pos += len(data)
            self._tail = (self._tail + data)[-_TAIL:]
            self._split(data, lines)
        return False

    def _split(self, data: bytes, lines: list[str]) -> None:
        if self._skipping:
            cut = data.find(b"\n")
            if cut < 0:
                return
            data, self._skipping = data[cut + 1 :], False
        data = self._partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
        else:
            text = data[:cut].decode("utf-8", "replace")
            lines.extend(text.split("\n"))
            self._partial = data[cut + 1 :]
        if len(self._partial) > self.max_line:
            # A line longer than the cap: keep its start, drop the rest up to its newline.
            lines.append(self._partial[: self.max_line].decode("utf-8", "replace"))
            self._partial, self._skipping = b"", True

    def _flush_partial(self, lines: list[str]) -> None:
        """Emit an unterminated last line (its file is being left: it will not grow any more)."""
        if self._partial:
            lines.append(self._partial.decode("utf-8", "replace"))
        self._partial, self._skipping = b"", False
