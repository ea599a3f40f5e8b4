"""Filesystems: space and inodes per mount, from the host's mountinfo and statvfs(3).

Mounts come from {procfs}/1/mountinfo (the host's init: right when the agent runs in a container
with the host's /proc), else {procfs}/self/mountinfo. statvfs runs on the mountpoint joined
under `host_root`. A hung mount (a dead NFS server) cannot block the tick: the statvfs calls run
one after another on a worker thread, each waited for up to `[instrumentation.filesystem] timeout`
seconds. A call past its deadline leaves its worker to it (that thread stays blocked in the kernel
until the server answers, then exits) and a fresh worker takes the remaining mounts; the hung mount
is reported once and skipped, and no second call is started for it while the first is stuck, so
blocked threads never pile up: at most one per hung mount.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.system_attributes import (
    SYSTEM_DEVICE,
    SYSTEM_FILESYSTEM_MODE,
    SYSTEM_FILESYSTEM_MOUNTPOINT,
    SYSTEM_FILESYSTEM_STATE,
    SYSTEM_FILESYSTEM_TYPE,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.mountinfo import Mount, parse_mountinfo

_log = logging.getLogger(__name__)

INODES_USAGE = "sysops.filesystem.inodes.usage"
INODES_UTILIZATION = "sysops.filesystem.inodes.utilization"


class StatvfsResult(Protocol):
    """The fields of `os.statvfs_result` used here (statvfs(3))."""

    @property
    def f_frsize(self) -> int: ...
    @property
    def f_blocks(self) -> int: ...
    @property
    def f_bfree(self) -> int: ...
    @property
    def f_bavail(self) -> int: ...
    @property
    def f_files(self) -> int: ...
    @property
    def f_ffree(self) -> int: ...


class Statvfs(Protocol):
    """A statvfs(3) call: `os.statvfs`, or a test's stand-in (one that never returns, say)."""

    def __call__(self, path: str, /) -> StatvfsResult: ...


@dataclass(frozen=True, slots=True)
class FsUsage:
    """One mount's space (bytes) and inodes."""

    mount: Mount
    used: int
    free: int
    reserved: int
    inodes_used: int
    inodes_free: int

    @property
    def attributes(self) -> dict[str, str]:
        return {
            SYSTEM_DEVICE: self.mount.source,
            SYSTEM_FILESYSTEM_MOUNTPOINT: self.mount.mountpoint,
            SYSTEM_FILESYSTEM_TYPE: self.mount.fstype,
            SYSTEM_FILESYSTEM_MODE: "ro" if self.mount.read_only else "rw",
        }


def usage(mount: Mount, st: StatvfsResult) -> FsUsage:
    """Split a statvfs result as df(1) does: used, free to users, reserved for root."""
    size = st.f_frsize
    bfree = min(st.f_bfree, st.f_blocks)
    bavail = min(st.f_bavail, bfree)
    ffree = min(st.f_ffree, st.f_files)
    return FsUsage(
        mount=mount,
        used=(st.f_blocks - bfree) * size,
        free=bavail * size,
        reserved=(bfree - bavail) * size,
        inodes_used=st.f_files - ffree,
        inodes_free=ffree,
    )


def select_mounts(
    mounts: Iterable[Mount],
    include_mountpoints: list[re.Pattern[str]],
    exclude_mountpoints: list[re.Pattern[str]],
    include_types: list[re.Pattern[str]],
    exclude_types: list[re.Pattern[str]],
) -> list[Mount]:
    """Return the mounts the patterns let through, one per device (bind mounts collapse).

    Of several mounts of one device the one of the whole filesystem (root "/") wins, then the
    shortest mountpoint; a mountpoint mounted over keeps only its last (visible) mount.
    """

    def passes(value: str, include: list[re.Pattern[str]], exclude: list[re.Pattern[str]]) -> bool:
        if include and not any(p.search(value) for p in include):
            return False
        return not any(p.search(value) for p in exclude)

    visible: dict[str, Mount] = {}
    for mount in mounts:
        if passes(mount.mountpoint, include_mountpoints, exclude_mountpoints) and passes(
            mount.fstype, include_types, exclude_types
        ):
            visible[mount.mountpoint] = mount  # later lines mount over earlier ones
    best: dict[str, Mount] = {}
    for mount in visible.values():
        current = best.get(mount.device)
        rank = (mount.root != "/", len(mount.mountpoint), mount.mountpoint)
        if current is None or rank < (current.root != "/", len(current.mountpoint), current.mountpoint):
            best[mount.device] = mount
    return sorted(best.values(), key=lambda m: m.mountpoint)


DeviceOf = Callable[[str], int]


def device_number(path: str) -> int:
    """Return the device number of the filesystem holding `path` (stat(2) st_dev)."""
    return os.stat(path).st_dev


def mount_device(mount: Mount) -> int | None:
    """Return mountinfo's major:minor as a device number (None when it does not parse)."""
    major, _, minor = mount.device.partition(":")
    try:
        return os.makedev(int(major), int(minor))
    except (ValueError, OverflowError):
        return None


class _Job:
    """One statvfs call; `done` is set when it returns or raises."""

    def __init__(self, statvfs: Statvfs, path: str, device_of: DeviceOf | None = None) -> None:
        self.done = threading.Event()
        self.result: StatvfsResult | None = None
        self.error: OSError | None = None
        self.device: int | None = None
        self._statvfs, self._path, self._device_of = statvfs, path, device_of

    def run(self) -> None:
        try:
            if self._device_of is not None:
                self.device = self._device_of(self._path)
            self.result = self._statvfs(self._path)
        except OSError as exc:
            self.error = exc
        finally:
            self.done.set()


class _Worker:
    """A daemon thread running jobs one after another until it is given None.

    Daemon: a worker blocked in the kernel on a dead mount must not hold the agent's exit.
    """

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="statvfs", daemon=True).start()

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            job.run()


class FilesystemCollector(Collector[list[FsUsage]]):
    """`system.filesystem.usage`, `.utilization`, `.limit` and `sysops.filesystem.inodes.*`."""

    def __init__(
        self, ctx: CollectorContext, statvfs: Statvfs | None = None, device_of: DeviceOf | None = None
    ) -> None:
        """`device_of` gives a path's st_dev; by default stat(2) when `statvfs` is the real one,
        and no check when a test stands in for statvfs without giving it."""
        super().__init__(ctx)
        candidates = [ctx.procfs / "1" / "mountinfo", ctx.procfs / "self" / "mountinfo"]
        self._mountinfo = next((p for p in candidates if os.access(p, os.R_OK)), None)
        if self._mountinfo is None:
            raise CollectorUnavailableError(f"none of {', '.join(map(str, candidates))} is readable")
        cfg = ctx.settings.instrumentation.filesystem
        self._patterns = (
            [re.compile(p) for p in cfg.include_mountpoints],
            [re.compile(p) for p in cfg.exclude_mountpoints],
            [re.compile(p) for p in cfg.include_types],
            [re.compile(p) for p in cfg.exclude_types],
        )
        self._timeout = cfg.timeout
        self._statvfs: Statvfs = statvfs or os.statvfs
        self._device_of = device_of if device_of is not None or statvfs is not None else device_number
        # mountpoint -> its call still running past the deadline (at most one per mount)
        self._stuck: dict[str, _Job] = {}
        self._worker: _Worker | None = None
        self._warned: set[tuple[str, str]] = set()
        self._checked_view = False

    def _check_view(self, mounts: list[Mount], path: Path) -> None:
        """Warn once when the mount table is a container's, not the host's (rootfs on overlay)."""
        self._checked_view = True
        root = next((m for m in reversed(mounts) if m.mountpoint == "/"), None)
        if path.parent.name == "self" or (root is not None and root.fstype == "overlay"):
            _log.warning(
                "filesystem: %s looks like a container's view of the mounts (root on %s), not the host's;"
                " mount the host's /proc and / and set SYSOPS_PROCFS and SYSOPS_HOST_ROOT",
                path,
                root.fstype if root is not None else "unknown",
            )

    @property
    def hung(self) -> list[str]:
        """Return the mountpoints whose statvfs is stuck right now."""
        return sorted(mp for mp, call in self._stuck.items() if not call.done.is_set())

    def _host_path(self, mountpoint: str) -> str:
        return str(self.ctx.host_root / mountpoint.lstrip("/"))

    def sample(self, now: float) -> list[FsUsage]:
        assert self._mountinfo is not None
        info = parse_mountinfo(self.ctx.files.read_text(self._mountinfo))
        self.ctx.count_error("malformed_line", info.malformed)
        if not self._checked_view:
            self._check_view(info.mounts, self._mountinfo)
        mounts = select_mounts(info.mounts, *self._patterns)
        out: list[FsUsage] = []
        for mount in mounts:
            stuck = self._stuck.get(mount.mountpoint)
            if stuck is not None:
                if not stuck.done.is_set():
                    self.ctx.count_error("hung_mount")
                    continue
                del self._stuck[mount.mountpoint]
                _log.info("filesystem %s answers again", mount.mountpoint)
                self._warned.discard((mount.mountpoint, "hung"))
            job = _Job(self._statvfs, self._host_path(mount.mountpoint), self._device_of)
            if self._worker is None:
                self._worker = _Worker()
            self._worker.jobs.put(job)
            if not job.done.wait(self._timeout):
                # The worker is blocked in this call: leave it to it (it exits once the call
                # returns and it reads the None) and let a fresh worker take the next mounts.
                self._worker.jobs.put(None)
                self._worker = None
                self._stuck[mount.mountpoint] = job
                self.ctx.count_error("hung_mount")
                self._warn_once(
                    mount.mountpoint,
                    "hung",
                    "filesystem %s (%s) did not answer statvfs within %.1f s; skipped until it does",
                    mount.mountpoint,
                    mount.fstype,
                    self._timeout,
                )
                continue
            if job.error is not None:
                self.ctx.count_error("statvfs")
                self._warn_once(
                    mount.mountpoint, "error", "statvfs %s: %s", mount.mountpoint, job.error.strerror
                )
                continue
            if job.device is not None and job.device != mount_device(mount):
                # The path under the host root is not this mount (no mount propagation into the
                # container): its figures would be another filesystem's under this one's labels.
                self.ctx.count_error("device_mismatch")
                self._warn_once(
                    mount.mountpoint,
                    "device",
                    "filesystem %s: %s is on device %d:%d, not mountinfo's %s; skipped",
                    mount.mountpoint,
                    self._host_path(mount.mountpoint),
                    os.major(job.device),
                    os.minor(job.device),
                    mount.device,
                )
                continue
            if job.result is not None:
                out.append(usage(mount, job.result))
        # Forget stuck calls of mounts that are gone (unmounted by force).
        live = {m.mountpoint for m in mounts}
        for mountpoint in [mp for mp, c in self._stuck.items() if mp not in live and c.done.is_set()]:
            del self._stuck[mountpoint]
        return out

    def close(self) -> None:
        """Let the worker thread exit."""
        if self._worker is not None:
            self._worker.jobs.put(None)
            self._worker = None

    def _warn_once(self, mountpoint: str, kind: str, msg: str, *args: object) -> None:
        if (mountpoint, kind) not in self._warned:
            self._warned.add((mountpoint, kind))
            _log.warning(msg, *args)

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            sm.SYSTEM_FILESYSTEM_USAGE, [self._usage], "By", "Space by state: used, free, reserved for root"
        )
        meter.create_observable_gauge(
            sm.SYSTEM_FILESYSTEM_UTILIZATION,
            [self._utilization],
            "1",
            "Share of the space usable by non-root users that is used (as df's Use%)",
        )
        meter.create_observable_up_down_counter(
            sm.SYSTEM_FILESYSTEM_LIMIT, [self._limit], "By", "Size of the filesystem"
        )
        meter.create_observable_up_down_counter(
            INODES_USAGE, [self._inodes], "{inode}", "Inodes by state: used, free"
        )
        meter.create_observable_gauge(
            INODES_UTILIZATION, [self._inodes_utilization], "1", "Share of inodes used"
        )

    def _each(self) -> list[FsUsage]:
        return self.snapshot or []

    def _usage(self, _: CallbackOptions) -> Iterable[Observation]:
        for fs in self._each():
            attrs = fs.attributes
            for state, value in (("used", fs.used), ("free", fs.free), ("reserved", fs.reserved)):
                yield Observation(value, {**attrs, SYSTEM_FILESYSTEM_STATE: state})

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        for fs in self._each():
            if fs.used + fs.free > 0:
                yield Observation(fs.used / (fs.used + fs.free), fs.attributes)

    def _limit(self, _: CallbackOptions) -> Iterable[Observation]:
        for fs in self._each():
            yield Observation(fs.used + fs.free + fs.reserved, fs.attributes)

    def _inodes(self, _: CallbackOptions) -> Iterable[Observation]:
        for fs in self._each():
            if fs.inodes_used + fs.inodes_free > 0:  # btrfs, vfat: no fixed inode table
                attrs = fs.attributes
                yield Observation(fs.inodes_used, {**attrs, SYSTEM_FILESYSTEM_STATE: "used"})
                yield Observation(fs.inodes_free, {**attrs, SYSTEM_FILESYSTEM_STATE: "free"})

    def _inodes_utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        for fs in self._each():
            total = fs.inodes_used + fs.inodes_free
            if total > 0:
                yield Observation(fs.inodes_used / total, fs.attributes)
