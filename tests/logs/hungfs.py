"""A FUSE file system served by the test process that can be made to hang, as an NFS or FUSE
server that went away: after `hang()` every stat, read or open on the mount blocks in the kernel.

The kernel's FUSE protocol is spoken directly on /dev/fuse (no libfuse): one directory, files whose
bytes the test sets, attributes never cached (each stat reaches the server), direct I/O (each read
does too). Flush is answered "not implemented", so closing a file never waits on the server.
A hung server reads no more requests: they wait in the kernel, where no signal but SIGKILL ends
the wait (a request a server has read and not answered could not even be killed).
Mounting needs root and /dev/fuse; `HungFS` raises `FuseUnavailableError` where they are missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
import time
from pathlib import Path
from types import TracebackType

LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE, FLUSH, INIT = 1, 2, 3, 14, 15, 17, 18, 25, 26
OPENDIR, READDIR, RELEASEDIR, ACCESS, INTERRUPT, BATCH_FORGET = 27, 28, 29, 34, 36, 42
NAMES = {LOOKUP: "lookup", GETATTR: "getattr", OPEN: "open", READ: "read", STATFS: "statfs"}
_NO_REPLY = {FORGET, INTERRUPT, BATCH_FORGET}
_IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, pad
_OUT_HEADER = struct.Struct("<IiQ")  # len, error (-errno), unique
_ROOT = 1
_FOPEN_DIRECT_IO = 1
_MNT_DETACH = 2


class FuseUnavailableError(Exception):
    """This machine or user cannot mount a FUSE file system."""


def _attr(ino: int, mode: int, size: int) -> bytes:
    now = int(time.time())
    nlink = 2 if mode & 0o40000 else 1
    blocks = (size + 511) // 512
    return struct.pack(
        "<QQQQQQIIIIIIIIII", ino, size, blocks, now, now, now, 0, 0, 0, mode, nlink, 0, 0, 0, 4096, 0
    )


class HungFS:
    """Serve `files` (name -> bytes) at `mountpoint` until `hang()`; unmount on exit."""

    def __init__(self, mountpoint: Path) -> None:
        self.mountpoint = mountpoint
        self.files: dict[str, bytes] = {}
        self._inodes: dict[str, int] = {}  # name -> inode (= FUSE node id), fixed once seen
        self.served: list[str] = []
        """Names of the requests answered (lookup, getattr, open, read, ...), in order."""
        self.waiting = threading.Event()
        """Set once a request waits for the hung server (some caller is blocked in the kernel)."""
        self._fd: int | None = None
        self._hung = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> HungFS:
        try:
            fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise FuseUnavailableError(f"/dev/fuse: {exc.strerror}") from exc
        libc = ctypes.CDLL(None, use_errno=True)
        options = f"fd={fd},rootmode=40000,user_id={os.getuid()},group_id={os.getgid()}"
        if libc.mount(b"sysops-test", bytes(self.mountpoint), b"fuse", 0, options.encode()) != 0:
            os.close(fd)
            raise FuseUnavailableError(f"mount: {os.strerror(ctypes.get_errno())}")
        self._fd = fd
        self._thread = threading.Thread(target=self._serve, name="hungfs", daemon=True)
        self._thread.start()
        # One open and close: the kernel learns that flush is not implemented and never sends it
        # again, so no close (nor a killed process's exit) waits on the hung server.
        self.files[".flush-probe"] = b""
        (self.mountpoint / ".flush-probe").open("rb").close()
        del self.files[".flush-probe"]
        with self._lock:
            self.served.clear()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._fd is not None:
            os.close(self._fd)  # aborts the connection: requests still held fail with ENOTCONN
            self._fd = None
        libc = ctypes.CDLL(None, use_errno=True)
        libc.umount2(bytes(self.mountpoint), _MNT_DETACH)

    def hang(self) -> None:
        """Answer nothing from now on: every request waits in the kernel."""
        self._hung.set()

    def answer(self) -> None:
        """Answer again (the server is back): what waited is served now."""
        self.waiting.clear()
        self._hung.clear()

    def wait_blocked(self, timeout: float) -> bool:
        """Wait until a caller is blocked on the hung mount; return whether one is."""
        return self.waiting.wait(timeout)

    def looked_up_after_open(self) -> bool:
        """Return whether a path lookup was answered after the first open: a follower that opened
        the file has joined it and is polling (it looks the path up to notice a rotation)."""
        with self._lock:
            if "open" not in self.served:
                return False
            return "lookup" in self.served[self.served.index("open") + 1 :]

    def count(self, name: str) -> int:
        """Return how many `name` requests were answered."""
        with self._lock:
            return self.served.count(name)

    def _serve(self) -> None:
        assert self._fd is not None
        fd = self._fd
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            if self._hung.is_set():
                # Readable: a request is queued, and stays so (never read, never answered).
                self.waiting.set()
                self._stop.wait(0.05)
                continue
            try:
                message = os.read(fd, 1 << 17)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                    continue  # a request interrupted before we read it
                return  # ENODEV: unmounted
            length, opcode, unique, nodeid, *_ = _IN_HEADER.unpack_from(message)
            body = message[_IN_HEADER.size : length]
            if opcode in _NO_REPLY:
                continue
            error, payload = self._answer(opcode, nodeid, body)
            with self._lock:
                self.served.append(NAMES.get(opcode, str(opcode)))
            reply = _OUT_HEADER.pack(_OUT_HEADER.size + len(payload), -error, unique) + payload
            try:
                os.write(fd, reply)
            except OSError as exc:
                if exc.errno != errno.ENOENT:  # ENOENT: the caller was interrupted meanwhile
                    raise

    def _node(self, nodeid: int) -> tuple[str, bytes] | None:
        name = next((n for n, ino in self._inodes.items() if ino == nodeid), None)
        return (name, self.files[name]) if name is not None and name in self.files else None

    def _answer(self, opcode: int, nodeid: int, body: bytes) -> tuple[int, bytes]:
        handler = {
            INIT: self._init,
            LOOKUP: self._lookup,
            GETATTR: self._getattr,
            OPEN: lambda _n, _b: (0, struct.pack("<QII", 0, _FOPEN_DIRECT_IO, 0)),
            OPENDIR: lambda _n, _b: (0, struct.pack("<QII", 0, 0, 0)),
            READ: self._read,
            STATFS: lambda _n, _b: (
                0,
                struct.pack("<QQQQQIIII", 0, 0, 0, 0, 0, 4096, 255, 4096, 0) + bytes(24),
            ),
            RELEASE: _empty,
            RELEASEDIR: _empty,
            ACCESS: _empty,
            READDIR: _empty,  # no entries: the tests name their files
        }.get(opcode)
        # Anything else (FLUSH included: the kernel then stops sending it) is not implemented.
        return handler(nodeid, body) if handler is not None else (errno.ENOSYS, b"")

    def _init(self, nodeid: int, body: bytes) -> tuple[int, bytes]:
        _major, _minor, readahead, _flags = struct.unpack_from("<IIII", body)
        return 0, struct.pack("<IIIIHHIIHHI", 7, 31, readahead, 0, 0, 0, 4096, 1, 0, 0, 0) + bytes(28)

    def _lookup(self, nodeid: int, body: bytes) -> tuple[int, bytes]:
        name = body.split(b"\0", 1)[0].decode()
        if nodeid != _ROOT or name not in self.files:
            return errno.ENOENT, b""
        ino = self._inodes.setdefault(name, 2 + len(self._inodes))
        return 0, struct.pack("<QQQQII", ino, 0, 0, 0, 0, 0) + _attr(ino, 0o100644, len(self.files[name]))

    def _getattr(self, nodeid: int, body: bytes) -> tuple[int, bytes]:
        if nodeid == _ROOT:
            return 0, struct.pack("<QII", 0, 0, 0) + _attr(_ROOT, 0o40755, 0)
        node = self._node(nodeid)
        if node is None:
            return errno.ENOENT, b""
        return 0, struct.pack("<QII", 0, 0, 0) + _attr(nodeid, 0o100644, len(node[1]))

    def _read(self, nodeid: int, body: bytes) -> tuple[int, bytes]:
        _fh, offset, size = struct.unpack_from("<QQI", body)
        node = self._node(nodeid)
        return (0, node[1][offset : offset + size]) if node is not None else (errno.ENOENT, b"")


def _empty(nodeid: int, body: bytes) -> tuple[int, bytes]:
    return 0, b""
