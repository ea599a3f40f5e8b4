"""The log sources: /dev/kmsg (or `dmesg --follow`), syslog files, and `journalctl -f -o json`."""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import anyio.to_thread

from otel_sysops.errors import SysopsError

from ._analyzer import LogAnalyzer
from ._follow import FileFollower
from ._parse import KmsgRecord, parse_dmesg_raw, parse_journal, parse_kmsg, sanitize, split_kmsg
from ._positions import Position, PositionFile
from ._worker import DaemonWorker

_log = logging.getLogger(__name__)

# The kernel refuses reads into a buffer smaller than one record (dev-kmsg: up to ~8 KiB).
KMSG_READ = 16384
# Seconds a file read still running at shutdown is waited for before it is left behind.
STUCK_DEADLINE = 2.0
# Seconds between saves of a followed file's position (and once more at shutdown).
SAVE_INTERVAL = 1.0


class SourceError(SysopsError):
    """A log source failed; it is retried with backoff."""


class SourceUnavailableError(SourceError):
    """A log source cannot run on this host (no device, no permission, no binary); retried rarely."""


class LogSource(Protocol):
    """One stream of lines fed to the analyzer."""

    name: str
    kind: str

    async def run(self) -> None:
        """Read until cancelled; raise SourceError (or OSError) when the source fails."""


def boot_time() -> float:
    """Return the wall-clock time of boot on the clock the kernel stamps kmsg records with."""
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


async def iter_lines(stream: anyio.abc.ByteReceiveStream, max_line: int) -> AsyncIterator[bytes]:
    """Yield the lines of a byte stream (without the newline), cutting lines longer than `max_line`."""
    buffer = b""
    skipping = False
    async for received in stream:
        chunk = received
        if skipping:
            cut = chunk.find(b"\n")
            if cut < 0:
                continue
            chunk, skipping = chunk[cut + 1 :], False
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line
        if len(buffer) > max_line:
            yield buffer[:max_line]
            buffer, skipping = b"", True
    if buffer:
        yield buffer


class KmsgSource:
    """The kernel ring buffer from /dev/kmsg (needs CAP_SYSLOG); falls back to `dmesg --follow`."""

    kind = "kmsg"

    def __init__(
        self,
        analyzer: LogAnalyzer,
        path: Path = Path("/dev/kmsg"),
        *,
        replay: bool = False,
        dmesg: str | None = "dmesg",
        poll_interval: float = 0.25,
    ) -> None:
        self.name = f"kmsg {path}"
        self.analyzer = analyzer
        self.path = path
        self.replay = replay
        self.dmesg = dmesg
        self.poll_interval = poll_interval
        self.boot = boot_time()
        self.last_seq = -1
        # Set while the lines come from /dev/kmsg or dmesg: the journal then skips kernel lines.
        self.active = False
        self._fallback_logged = False

    async def run(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            await self._fallback(exc)
            return
        try:
            try:
                if self.last_seq < 0 and not self.replay:
                    # dev-kmsg: SEEK_END moves to the next record to be written.
                    os.lseek(fd, 0, os.SEEK_END)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:  # a FIFO standing in for the device
                    raise
            first = True
            pending = ""
            # The real device supports poll(2): wait on the event loop until a record arrives
            # instead of waking up to poll (that wake-up cost 0.3 % of a core here). Files and
            # FIFOs standing in for it are always readable, so those keep the sleep.
            device = stat.S_ISCHR(os.fstat(fd).st_mode)
            while True:
                try:
                    got, pending = await anyio.to_thread.run_sync(self._read, fd, pending)
                except OSError as exc:
                    if first and exc.errno in (errno.EPERM, errno.EACCES, errno.EINVAL):
                        await self._fallback(exc)
                        return
                    raise
                first = False
                self.active = True
                if not got:
                    if device:
                        with anyio.move_on_after(60):
                            await anyio.wait_readable(fd)
                    else:
                        await anyio.sleep(self.poll_interval)
        finally:
            self.active = False
            os.close(fd)

    def _read(self, fd: int, pending: str) -> tuple[int, str]:
        """Read and feed what is there (device: a record per read; file, FIFO: lines); return reads done."""
        count = 0
        records: list[str] = []
        self.boot = boot_time()  # follows wall-clock steps (NTP) between reads
        while count < 10_000:
            try:
                data = os.read(fd, KMSG_READ)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    # dev-kmsg: records were overwritten before we read them; reading goes on.
                    self.analyzer.stats.add_error(self.kind, "overrun")
                    continue
                raise
            if not data:
                break
            count += 1
            got, pending = split_kmsg(pending + data.decode("utf-8", "replace"))
            records.extend(got)
        self._feed(records)
        return count, pending

    def _feed(self, records: Sequence[str]) -> None:
        for text in records:
            record = parse_kmsg(text)
            if record is None:
                self.analyzer.stats.add_error(self.kind, "malformed_record")
                continue
            if record.seq >= 0 and record.seq <= self.last_seq:
                continue  # already seen (a re-opened device replays nothing twice)
            self.last_seq = max(self.last_seq, record.seq)
            self._feed_record(record)

    def _feed_record(self, record: KmsgRecord) -> None:
        self.analyzer.feed(self.kind, (record.message,), timestamp=self.boot + record.usec / 1e6)

    async def _fallback(self, cause: OSError) -> None:
        if self.dmesg is None:
            raise SourceUnavailableError(f"{self.path} cannot be read ({cause.strerror})") from cause
        if not self._fallback_logged:
            self._fallback_logged = True
            _log.info(
                "%s cannot be read (%s); following `%s --follow` instead",
                self.path,
                cause.strerror,
                self.dmesg,
            )
        follow = "--follow" if self.replay else "--follow-new"
        try:
            process = await anyio.open_process(
                [self.dmesg, follow, "--raw"],
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # Out of the terminal's process group: a Ctrl-C stops the agent, which stops them.
                start_new_session=True,
            )
        except OSError as exc:
            raise SourceUnavailableError(
                f"{self.path} cannot be read ({cause.strerror}) and {self.dmesg} cannot run ({exc.strerror})"
            ) from exc
        try:
            await _follow_process(process, self._dmesg_line, self.analyzer.max_line, self._set_active)
        except SourceUnavailableError as exc:
            raise SourceUnavailableError(
                f"{self.path} cannot be read ({cause.strerror}) and {self.dmesg} {exc}"
            ) from exc

    def _set_active(self, active: bool) -> None:
        self.active = active

    def _dmesg_line(self, line: bytes) -> None:
        record = parse_dmesg_raw(line.decode("utf-8", "replace"))
        if record is None:
            self.analyzer.stats.add_error(self.kind, "malformed_record")
            return
        self._feed_record(record)


async def _follow_process(
    process: anyio.abc.Process,
    on_line: Callable[[bytes], None],
    max_line: int,
    set_active: Callable[[bool], None] = lambda _: None,
) -> None:
    """Feed a subprocess's stdout lines to `on_line` until it exits; raise SourceError naming why.

    A process that fails without printing a line (no permission, no journal) raises
    SourceUnavailableError: it is not a fault of the moment and is retried rarely.
    """
    last_error: list[bytes] = []
    lines = 0

    async def drain_stderr() -> None:
        assert process.stderr is not None
        async for line in iter_lines(process.stderr, 1024):
            if line.strip():
                last_error[:] = [line.strip()]

    try:
        async with anyio.create_task_group() as tg:
            if process.stderr is not None:
                tg.start_soon(drain_stderr)
            assert process.stdout is not None
            set_active(True)
            async for line in iter_lines(process.stdout, max_line):
                lines += 1
                on_line(line)
            code = await process.wait()
    finally:
        set_active(False)
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()
    detail = sanitize(last_error[0].decode("utf-8", "replace"), 300) if last_error else "no message"
    if lines == 0 and code != 0:
        raise SourceUnavailableError(f"exited with status {code}: {detail}")
    raise SourceError(f"exited with status {code}: {detail}")


class Follower(Protocol):
    """What a file source reads through (`FileFollower`; blocking calls, made off the loop)."""

    behind: bool

    @property
    def position(self) -> int:
        """Return the byte offset read up to."""

    def poll(self) -> list[str]:
        """Return the lines completed since the last poll."""

    def snapshot(self) -> Position | None:
        """Return where a restart should resume."""

    def close(self) -> None:
        """Close the file."""


class _NotOpen:
    """The follower of a file whose opening is still stuck (a hung filesystem at start)."""

    behind = False
    position = 0

    def poll(self) -> list[str]:
        return []

    def snapshot(self) -> Position | None:
        return None

    def close(self) -> None:
        return None


class _Opening:
    """A `FileFollower` being made (it opens and stats the file) on a daemon thread of its own."""

    def __init__(self, make: Callable[[], FileFollower], name: str) -> None:
        self.follower: FileFollower | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.since = time.monotonic()
        self.make, self.name = make, name
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.follower = self.make()
        except BaseException as exc:  # noqa: BLE001 - raised where the follower is taken
            self.error = exc
        finally:
            self.done.set()


class FileSource:
    """A syslog-style file followed across rotations: from its end, or from where the previous run
    stopped when a state directory keeps positions.

    The file is opened and read on daemon threads of the source's own. An open still stuck after
    `STUCK_DEADLINE` seconds (a hung filesystem at start) lets the agent start without the file,
    which is followed once the open returns; a read stuck on a hung filesystem is left behind at
    shutdown after `STUCK_DEADLINE` seconds, with one line naming the file.
    """

    kind = "file"

    def __init__(
        self,
        analyzer: LogAnalyzer,
        path: Path,
        *,
        poll_interval: float = 0.25,
        state_dir: Path | None = None,
        follower: Follower | None = None,
    ) -> None:
        self.name = f"file {path}"
        self.analyzer = analyzer
        self.path = path
        self.poll_interval = poll_interval
        self.positions = PositionFile(state_dir, path) if state_dir is not None else None
        resume = self.positions.load() if self.positions is not None else None
        self._opening: _Opening | None = None
        if follower is None:
            make = functools.partial(FileFollower, path, max_line=analyzer.max_line, resume=resume)
            opening = _Opening(make, f"log open {path}")
            if opening.done.wait(STUCK_DEADLINE):
                if opening.error is not None:
                    raise opening.error
                follower = opening.follower
            else:
                _log.warning(
                    "log file %s: opening it has been stuck for %.1fs (hung filesystem?); "
                    "starting without it, it is followed once the open returns",
                    path,
                    STUCK_DEADLINE,
                )
                self._opening = opening
        self.follower: Follower = follower if follower is not None else _NotOpen()
        self.worker = DaemonWorker(f"log file {path}")
        self._waiting_logged = False
        self._position: Position | None = None
        self._saved_at = 0.0

    async def run(self) -> None:
        try:
            if self._opening is not None:
                while not self._opening.done.is_set():
                    await anyio.sleep(self.poll_interval)
                opening, self._opening = self._opening, None
                if opening.error is not None:
                    self._opening = _Opening(opening.make, opening.name)  # again when restarted
                    raise opening.error
                assert opening.follower is not None
                self.follower = opening.follower
            while True:
                await self.worker.call(self._poll)
                # A backlog is read budget by budget without pausing (yielding to the loop between).
                await anyio.sleep(0 if self.follower.behind else self.poll_interval)
        finally:
            if self._opening is not None and not self._opening.done.is_set():
                stuck: float | None = time.monotonic() - self._opening.since
            else:
                stuck = await self.worker.settle(STUCK_DEADLINE)
            if stuck is not None:
                # The thread stays blocked in the kernel; it is a daemon, so the process still exits.
                _log.warning(
                    "log file %s: a read has been stuck for %.1fs (hung filesystem?); left behind",
                    self.path,
                    stuck,
                )
            else:
                self._position = self.follower.snapshot() or self._position
                self.follower.close()
            self.worker.stop()
            if self.positions is not None:
                # Off the loop and within the deadline too: the state directory may hang as well.
                saver = DaemonWorker(f"log position {self.path}")
                with anyio.move_on_after(STUCK_DEADLINE, shield=True):
                    await saver.call(functools.partial(self.positions.save, self._position))
                saver.stop()

    def _poll(self) -> None:
        lines = self.follower.poll()
        if not lines and self.follower.position == 0 and not self.path.exists() and not self._waiting_logged:
            self._waiting_logged = True
            _log.info("log file %s does not exist yet; waiting for it", self.path)
        self.analyzer.feed(self.kind, lines, path=str(self.path), syslog=True)
        if self.positions is not None:
            self._position = self.follower.snapshot() or self._position
            now = time.monotonic()
            if now - self._saved_at >= SAVE_INTERVAL:
                self._saved_at = now
                self.positions.save(self._position)


class JournalSource:
    """The systemd journal through `journalctl --follow --output=json`, resumed by cursor on restart."""

    kind = "journal"

    def __init__(
        self,
        analyzer: LogAnalyzer,
        journalctl: str = "journalctl",
        *,
        root: Path | None = None,
        skip_kernel: Callable[[], bool] = lambda: False,
    ) -> None:
        self.name = "journal"
        self.analyzer = analyzer
        self.journalctl = journalctl
        self.root = root
        self.skip_kernel = skip_kernel
        self.cursor: str | None = None

    def command(self) -> list[str]:
        """Return the journalctl command line: from now on, or after the last entry read."""
        cmd = [self.journalctl, "--follow", "--output=json", "--no-pager"]
        if self.root is not None:
            cmd.append(f"--root={self.root}")
        cmd.append(f"--after-cursor={self.cursor}" if self.cursor else "--lines=0")
        return cmd

    async def run(self) -> None:
        try:
            process = await anyio.open_process(
                self.command(),
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # Out of the terminal's process group: a Ctrl-C stops the agent, which stops them.
                start_new_session=True,
            )
        except OSError as exc:
            raise SourceUnavailableError(f"{self.journalctl} cannot run ({exc.strerror})") from exc
        await _follow_process(process, self._line, 1 << 20)

    def _line(self, line: bytes) -> None:
        entry = parse_journal(line)
        if entry is None:
            if line.strip():
                self.analyzer.stats.add_error(self.kind, "malformed_entry")
            return
        if entry.cursor:
            self.cursor = entry.cursor
        if entry.transport == "kernel" and self.skip_kernel():
            self.analyzer.stats.add_lines(self.kind, "", 1)
            return
        self.analyzer.feed(self.kind, (entry.message,), timestamp=entry.timestamp)
