"""Processes: count by state, processes created, and the top-N processes by CPU and by resident
memory (utilization, memory, open descriptors, threads), from /proc/[pid]/stat (proc(5)).

Every PID's stat file is read once per tick (one open and one read each); the per-process extras
(status for the owner, exe for the name, the fd directory) only for the top N. Per-process series
go through the churning meter, so PIDs coming and going never fill SDK storage.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.process_attributes import (
    PROCESS_EXECUTABLE_NAME,
    PROCESS_OWNER,
    PROCESS_PID,
    PROCESS_STATE,
)
from opentelemetry.semconv._incubating.metrics import process_metrics as pm
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._hostview import check_process_view
from ._linux.pidstat import PidStat, parse_passwd, parse_pid_stat, parse_status_uid
from ._linux.stat import CPU_COLUMNS, parse_stat

_log = logging.getLogger(__name__)

# ps(1) PROCESS STATE CODES -> process.state (the convention's values first, then Linux's own).
STATES = {
    "R": "running",
    "S": "sleeping",
    "T": "stopped",
    "t": "stopped",
    "Z": "defunct",
    "D": "blocked",
    "I": "idle",
    "X": "dead",
    "W": "paging",
    "P": "parked",
}
# guest and guest_nice are already counted in user and nice (proc(5)).
_TOTAL_COLUMNS = CPU_COLUMNS[:8]


@dataclass(slots=True)
class TopProcess:
    """One reported process."""

    pid: int
    name: str
    owner: str | None
    # Share of all CPUs' time since the previous tick (None: first seen this tick).
    cpu: float | None
    rss: int
    threads: int
    fds: int | None


@dataclass(slots=True)
class ProcessSnapshot:
    """Counts by state, processes created since boot, and the top processes."""

    states: Counter[str] = field(default_factory=Counter)
    created: int | None = None
    top: list[TopProcess] = field(default_factory=list)


def _read(path: str) -> str:
    """Read a small /proc file with one open and one read (text decoded leniently)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 8192).decode("utf-8", "replace")
    finally:
        os.close(fd)


def fd_dirs_report_counts(proc: str) -> bool:
    """Return whether `proc` is a live procfs whose /proc/<pid>/fd directories report their
    number of open descriptors as their size (Linux >= 6.2): one stat instead of a listing.

    Probed on this process's own directory, so a frozen tree or another PID namespace's procfs
    (where `self` is not this process) is listed as before."""
    try:
        if os.readlink(f"{proc}/self") != str(os.getpid()):
            return False
        path = f"{proc}/self/fd"
        size = os.stat(path).st_size
        listed = len(os.listdir(path))
    except OSError:
        return False
    return size > 0 and size in (listed, listed - 1)  # the listing's own descriptor, or not


def _has_dac_override() -> bool:
    """Return whether this process may list any process's fd directory (CAP_DAC_OVERRIDE or
    CAP_DAC_READ_SEARCH in its effective set)."""
    try:
        status = _read("/proc/self/status")
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) & 0b110)
            except (IndexError, ValueError):
                return False
    return False


class ProcessCollector(Collector[ProcessSnapshot]):
    """`system.process.count`, `system.process.created`, and `process.*` for the top-N processes."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._proc = str(ctx.procfs)
        if not ctx.procfs.is_dir():
            raise CollectorUnavailableError(f"{ctx.procfs} is not a directory")
        self._stat_path = ctx.procfs / "stat"
        self._top_n = ctx.settings.instrumentation.process.top_n
        self._page = os.sysconf("SC_PAGE_SIZE")
        # Per-PID state, rebuilt from the live PIDs every tick: pid -> (start time, cpu ticks).
        self._prev: dict[int, tuple[int, int]] = {}
        self._prev_total: int | None = None
        # PIDs whose fd directory we may not list (counted once each), pruned to live PIDs.
        self._denied: set[int] = set()
        self._logged_denied = False
        # (pid, start time, comm) -> (executable name, owner) of reported processes, pruned to
        # the ones reported: a process keeps its name and owner unless it execs (comm changes).
        self._identity: dict[tuple[int, int, str], tuple[str, str | None]] = {}
        self._passwd = ctx.host_root / "etc" / "passwd"
        self._users: dict[int, str] = {}
        self._passwd_mtime: float | None = None
        self._fd_by_size = fd_dirs_report_counts(self._proc)
        self._euid, self._dac = os.geteuid(), _has_dac_override()
        check_process_view(ctx)

    @property
    def state_size(self) -> int:
        """Count the per-PID entries held between ticks (bounded by the live PIDs)."""
        return len(self._prev) + len(self._denied) + len(self._identity)

    def sample(self, now: float) -> ProcessSnapshot:
        snap = ProcessSnapshot()
        total = self._cpu_total(snap)
        delta_total = None if total is None or self._prev_total is None else total - self._prev_total
        self._prev_total = total
        procs = self._read_all()
        prev, live = self._prev, {}
        cpu: dict[int, float] = {}
        states = snap.states
        for pid, (_comm, state, ticks, _threads, start, _rss) in procs.items():
            states[STATES.get(state, "other")] += 1
            live[pid] = (start, ticks)
            before = prev.get(pid)
            if before is not None and before[0] == start and delta_total:
                cpu[pid] = max(0, ticks - before[1]) / delta_total
        self._prev = live
        self._denied &= live.keys()
        if self._top_n:
            snap.top = self._top(procs, cpu)
        return snap

    def _cpu_total(self, snap: ProcessSnapshot) -> int | None:
        """Read /proc/stat (shared with the CPU collector): processes created and total CPU ticks."""
        try:
            stat = parse_stat(self.ctx.files.read_text(self._stat_path))
        except OSError:
            return None
        snap.created = stat.counters.get("processes")
        cpu = stat.cpus.get(-1)
        return None if cpu is None else sum(cpu.get(col, 0) for col in _TOTAL_COLUMNS)

    def _read_all(self) -> dict[int, PidStat]:
        """Read /proc/[pid]/stat for every PID; a process that exits meanwhile is skipped."""
        base = self._proc
        out: dict[int, PidStat] = {}
        malformed = 0
        with os.scandir(base) as entries:
            names = [e.name for e in entries if e.name.isdecimal()]
        for name in names:
            try:
                text = _read(f"{base}/{name}/stat")
            except OSError:
                continue
            parsed = parse_pid_stat(text)
            if parsed is None:
                malformed += 1
            else:
                out[int(name)] = parsed
        self.ctx.count_error("malformed_line", malformed)
        return out

    def _top(self, procs: dict[int, PidStat], cpu: dict[int, float]) -> list[TopProcess]:
        n = self._top_n
        busy = [pid for pid, share in cpu.items() if share > 0]
        by_cpu = heapq.nlargest(n, busy, key=cpu.__getitem__)
        by_rss = heapq.nlargest(n, procs, key=lambda pid: procs[pid][5])
        chosen = dict.fromkeys(by_cpu + by_rss)
        users = self._load_users()
        identities, out = {}, []
        for pid in chosen:
            comm, _state, _ticks, threads, start, rss = procs[pid]
            key = (pid, start, comm)
            identity = self._identity.get(key)
            if identity is None:
                identity = (self._exe_name(pid, comm), self._owner(pid, users))
            identities[key] = identity
            out.append(
                TopProcess(
                    pid=pid,
                    name=identity[0],
                    owner=identity[1],
                    cpu=cpu.get(pid),
                    rss=rss * self._page,
                    threads=threads,
                    fds=self._fd_count(pid),
                )
            )
        self._identity = identities
        return out

    def _exe_name(self, pid: int, comm: str) -> str:
        """Base name of /proc/[pid]/exe's target; the (15-byte) comm when it cannot be read."""
        try:
            target = os.readlink(f"{self._proc}/{pid}/exe")
        except OSError:
            return comm
        name = os.path.basename(target.removesuffix(" (deleted)"))
        # An anonymous executable (memfd:..., a deleted file's placeholder) says less than comm.
        return comm if not name or name.startswith("memfd:") else name

    def _owner(self, pid: int, users: dict[int, str]) -> str | None:
        try:
            uid = parse_status_uid(_read(f"{self._proc}/{pid}/status"))
        except OSError:
            return None
        if uid is None:
            self.ctx.count_error("malformed_line")
            return None
        return users.get(uid, str(uid))

    def _fd_count(self, pid: int) -> int | None:
        path = f"{self._proc}/{pid}/fd"
        if self._fd_by_size:
            try:
                st = os.stat(path)
            except OSError:
                return None  # exited
            # Only where listing it would be allowed too (the same processes as before are
            # counted); 0 may be a kernel without the count: asked the slow way.
            if st.st_size and (st.st_uid == self._euid or self._dac):
                return st.st_size
        try:
            return len(os.listdir(path))
        except PermissionError:
            if pid not in self._denied:
                self._denied.add(pid)
                self.ctx.count_error("permission")
                if not self._logged_denied:
                    self._logged_denied = True
                    _log.info(
                        "process: open descriptors of other users' processes are not readable "
                        "(run as root or with CAP_SYS_PTRACE); those are left out and counted"
                    )
            return None
        except OSError:
            return None

    def _load_users(self) -> dict[int, str]:
        """Return uid -> name from the host's passwd file, re-read when it changes."""
        try:
            mtime = self._passwd.stat().st_mtime
            if mtime != self._passwd_mtime:
                self._users, malformed = parse_passwd(
                    self._passwd.read_text(encoding="utf-8", errors="replace")
                )
                self.ctx.count_error("malformed_line", malformed)
                self._passwd_mtime = mtime
                self._identity.clear()  # owner names may have changed
        except OSError:
            self._users, self._passwd_mtime = {}, None
        return self._users

    # -- instruments -------------------------------------------------------------------------

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            sm.SYSTEM_PROCESS_COUNT, [self._count], "{process}", "Processes by state"
        )
        meter.create_observable_counter(
            sm.SYSTEM_PROCESS_CREATED, [self._created], "{process}", "Processes created since boot"
        )
        churn.create_observable_gauge(
            pm.PROCESS_CPU_UTILIZATION,
            [self._cpu],
            "1",
            "Share of all CPUs' time the process used since the last tick (top-N processes)",
        )
        churn.create_observable_up_down_counter(
            pm.PROCESS_MEMORY_USAGE, [self._rss], "By", "Resident memory (top-N processes)"
        )
        churn.create_observable_up_down_counter(
            pm.PROCESS_UNIX_FILE_DESCRIPTOR_COUNT,
            [self._fds],
            "{file_descriptor}",
            "Open file descriptors (top-N processes; formerly process.open_file_descriptor.count)",
        )
        churn.create_observable_up_down_counter(
            pm.PROCESS_THREAD_COUNT, [self._threads], "{thread}", "Threads (top-N processes)"
        )

    def _count(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None:
            for state, n in sorted(self.snapshot.states.items()):
                yield Observation(n, {PROCESS_STATE: state})

    def _created(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and self.snapshot.created is not None:
            yield Observation(self.snapshot.created)

    @staticmethod
    def _attrs(p: TopProcess) -> dict[str, str | int]:
        attrs: dict[str, str | int] = {PROCESS_PID: p.pid, PROCESS_EXECUTABLE_NAME: p.name}
        if p.owner is not None:
            attrs[PROCESS_OWNER] = p.owner
        return attrs

    def _cpu(self, _: CallbackOptions) -> Iterable[Observation]:
        for p in self.snapshot.top if self.snapshot is not None else ():
            if p.cpu is not None:
                yield Observation(p.cpu, self._attrs(p))

    def _rss(self, _: CallbackOptions) -> Iterable[Observation]:
        for p in self.snapshot.top if self.snapshot is not None else ():
            yield Observation(p.rss, self._attrs(p))

    def _fds(self, _: CallbackOptions) -> Iterable[Observation]:
        for p in self.snapshot.top if self.snapshot is not None else ():
            if p.fds is not None:
                yield Observation(p.fds, self._attrs(p))

    def _threads(self, _: CallbackOptions) -> Iterable[Observation]:
        for p in self.snapshot.top if self.snapshot is not None else ():
            yield Observation(p.threads, self._attrs(p))
