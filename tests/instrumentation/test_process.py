"""Process collector: frozen /proc trees through the real pipeline (counts, top-N, CPU deltas),
PID churn without overflow or unbounded state, the live machine, and the parsers under random input."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrumentation._hostview import network_view_problem, process_view_problem
from instrumentation._linux.pidstat import parse_passwd, parse_pid_stat, parse_status_uid
from instrumentation.process import ProcessCollector
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from tests.conftest import FIXTURES, need_binary
from tests.points import data_points

from ._collect import a, names, pipeline_with, points

HOST = FIXTURES / "host-net"
PAGE = os.sysconf("SC_PAGE_SIZE")


def _processes(settings: Settings) -> tuple[Pipeline, ProcessCollector]:
    pipe, collector = pipeline_with(settings, "process", ProcessCollector)
    assert isinstance(collector, ProcessCollector)
    return pipe, collector


def _stat_line(
    pid: int, comm: str, state: str, utime: int, stime: int, threads: int, start: int, rss: int
) -> str:
    # proc(5) field order; the fields we do not read are plausible constants.
    return (
        f"{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194560 500 0 0 0 {utime} {stime} 0 0 20 0 "
        f"{threads} 0 {start} 100000000 {rss} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
    )


def _settings(make_settings: Callable[..., Settings], root: Path, top_n: int = 2) -> Settings:
    return make_settings(
        procfs=str(root / "proc"), host_root=str(root), instrumentation={"process": {"top_n": top_n}}
    )


def _pid_attrs(pid: int, name: str, owner: str) -> frozenset[tuple[str, object]]:
    return a(process__pid=pid, process__executable__name=name, process__owner=owner)


def test_fixture_counts_and_top_processes_by_memory(make_settings: Callable[..., Settings]) -> None:
    pipe, _ = _processes(_settings(make_settings, HOST))
    data = pipe.tick().data
    assert points(data, "system.process.count") == {
        a(process__state="sleeping"): 2,
        a(process__state="running"): 1,
        a(process__state="defunct"): 1,
        a(process__state="idle"): 1,
    }
    assert points(data, "system.process.created") == {a(): 4321}
    # First tick: no CPU deltas yet, so the top is by resident memory only: postgres, systemd.
    postgres = _pid_attrs(200, "postgres", "postgres")  # exe "... (deleted)" still names it
    systemd = _pid_attrs(1, "systemd", "root")
    assert points(data, "process.memory.usage") == {postgres: 10000 * PAGE, systemd: 3000 * PAGE}
    assert points(data, "process.thread.count") == {postgres: 8, systemd: 1}
    assert points(data, "process.unix.file_descriptor.count") == {postgres: 7, systemd: 3}
    assert "process.cpu.utilization" not in names(data)
    # /proc/500/stat is cut short; etc/passwd has one broken line.
    assert pipe.errors.snapshot() == {("process", "malformed_line"): 2}
    pipe.close(1.0)


def test_cpu_utilization_from_deltas_and_pruned_state(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    shutil.copytree(HOST, tmp_path, symlinks=True, dirs_exist_ok=True)
    proc = tmp_path / "proc"
    pipe, collector = _processes(_settings(make_settings, tmp_path))
    pipe.tick()
    assert collector.state_size == 5 + 2  # every PID's CPU ticks; the names of the two reported
    # 800 ticks of all CPUs pass; nginx uses 240 of them, postgres 40; pid 300 exits, 600 starts.
    (proc / "stat").write_text(
        "cpu  1300 0 600 8400 100 0 0 0 0 0\ncpu0 650 0 300 4200 50 0 0 0 0 0\n"
        "cpu1 650 0 300 4200 50 0 0 0 0 0\nprocesses 4330\n"
    )
    (proc / "100" / "stat").write_text(_stat_line(100, "nginx", "R", 250, 70, 4, 5000, 2500))
    (proc / "200" / "stat").write_text(_stat_line(200, "postgres", "S", 30, 30, 8, 6000, 10000))
    shutil.rmtree(proc / "300")
    (proc / "600").mkdir()
    (proc / "600" / "stat").write_text(_stat_line(600, "cron", "S", 5, 5, 1, 9000, 100))
    data = pipe.tick().data
    nginx = _pid_attrs(100, "nginx", "www-data")
    postgres = _pid_attrs(200, "postgres", "postgres")
    systemd = _pid_attrs(1, "systemd", "root")
    # systemd is in the top by memory; it used no CPU.
    assert points(data, "process.cpu.utilization") == {nginx: 240 / 800, postgres: 40 / 800, systemd: 0.0}
    assert set(points(data, "process.memory.usage")) == {nginx, postgres, systemd}
    assert points(data, "system.process.created") == {a(): 4330}
    assert points(data, "system.process.count") == {
        a(process__state="sleeping"): 3,
        a(process__state="running"): 1,
        a(process__state="idle"): 1,
    }
    assert collector.state_size == 5 + 3  # 300 is forgotten, 600 is remembered; three reported
    pipe.close(1.0)


def test_pid_reuse_is_not_a_cpu_delta(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    shutil.copytree(HOST, tmp_path, symlinks=True, dirs_exist_ok=True)
    proc = tmp_path / "proc"
    pipe, _ = _processes(_settings(make_settings, tmp_path))
    pipe.tick()
    (proc / "stat").write_text("cpu  1300 0 600 8400 100 0 0 0 0 0\nprocesses 4330\n")
    # PID 100 now belongs to a new process (another start time) with more CPU time.
    (proc / "100" / "stat").write_text(_stat_line(100, "nginx", "R", 900, 0, 4, 8000, 20000))
    data = pipe.tick().data
    # Reported (top by memory) without a utilization: its 900 ticks are not a delta over 80.
    assert 100 in {dict(k)["process.pid"] for k in points(data, "process.memory.usage")}
    assert {dict(k)["process.pid"] for k in points(data, "process.cpu.utilization")} == {200}
    pipe.close(1.0)


def test_ten_thousand_pids_through_the_process_collector(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    pipe, collector = _processes(
        make_settings(
            procfs=str(proc),
            host_root=str(tmp_path),
            store={"evict_after": 5.0},
            instrumentation={"process": {"top_n": 10}},
        )
    )
    per_tick, ticks = 40, 250  # 10,000 PIDs in all, 40 alive at a time
    seen: set[int] = set()
    live: list[int] = []
    for tick in range(ticks):
        pids = [1000 + tick * per_tick + i for i in range(per_tick)]
        (proc / "stat").write_text(f"cpu  {tick * 1000} 0 0 {tick * 1000} 0 0 0 0 0 0\nprocesses {tick}\n")
        for i, pid in enumerate(pids):
            # The old processes exit and new ones appear (a rename: removing directories is slow here).
            if live:
                (proc / str(live[i])).rename(proc / str(pid))
            else:
                (proc / str(pid)).mkdir()
            (proc / str(pid) / "stat").write_text(_stat_line(pid, f"w{i}", "S", i, 0, 1, pid, 100 + i))
        live = pids
        data = pipe.tick(timestamp=1_000_000.0 + tick).data
        memory = points(data, "process.memory.usage")
        assert len(memory) == 10
        for metric, point in data_points(data):
            assert "otel.metric.overflow" not in (point.attributes or {}), metric.name
        seen |= {int(dict(k)["process.pid"]) for k in memory}
        assert collector.state_size <= per_tick + 2 * 10  # live PIDs, and the names of the reported
    assert len(seen) == 10 * ticks
    assert pipe.store.refused == 0
    pipe.close(1.0)


def test_live_process_count_is_plausible(make_settings: Callable[..., Settings]) -> None:
    pipe, _ = _processes(make_settings())
    pipe.tick()
    before = len(psutil.pids())
    data = pipe.tick().data
    after = len(psutil.pids())
    total = sum(points(data, "system.process.count").values())
    assert min(before, after) - 5 <= total <= max(before, after) + 5
    memory = points(data, "process.memory.usage")
    assert 1 <= len(memory) <= 20
    me = [k for k in memory if dict(k)["process.pid"] == os.getpid()]
    if me:  # the test process is usually among the largest
        assert abs(memory[me[0]] - psutil.Process().memory_info().rss) < 64 * 1024 * 1024
    pipe.close(1.0)


# -- the host-view self-check ----------------------------------------------------------------


def test_host_view_check(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    assert process_view_problem(HOST / "proc") is None  # PID 1 is systemd
    proc = tmp_path / "proc"
    shutil.copytree(HOST / "proc", proc, symlinks=True)
    (proc / "1" / "comm").write_text("sleep\n")
    problem = process_view_problem(proc)
    assert problem is not None
    assert "hostPID" in problem
    live = process_view_problem(Path("/proc"))  # the advice for an agent reading its own /proc
    assert live is None or "SYSOPS_PROCFS=/host/proc" in live
    with caplog.at_level(logging.WARNING):
        pipe, _ = _processes(make_settings(procfs=str(proc)))
        for _ in range(3):
            pipe.tick()
    assert len([r for r in caplog.records if "not a host init" in r.getMessage()]) == 1
    pipe.close(1.0)

    # Network: only lo and one end of a veth pair -> a container's namespace.
    net = tmp_path / "net"
    net.mkdir()
    (net / "dev").write_text(
        (HOST / "proc" / "1" / "net" / "dev").read_text().replace("eth0", "eth9").replace("veth1a2b", "lo2")
    )
    sysfs = tmp_path / "sys"
    (sysfs / "class" / "net" / "eth9").mkdir(parents=True)
    (sysfs / "class" / "net" / "eth9" / "ifindex").write_text("2\n")
    (sysfs / "class" / "net" / "eth9" / "iflink").write_text("7\n")
    assert network_view_problem(sysfs, net) is None  # three interfaces: not the container shape
    (net / "dev").write_text(
        "\n".join(line for line in (net / "dev").read_text().splitlines() if "lo2" not in line)
    )
    problem = network_view_problem(sysfs, net)
    assert problem is not None
    assert "hostNetwork" in problem
    (sysfs / "class" / "net" / "eth9" / "iflink").write_text("2\n")  # a physical NIC
    assert network_view_problem(sysfs, net) is None


# -- the parsers -----------------------------------------------------------------------------


def test_pid_stat_literals() -> None:
    line = _stat_line(42, "a) b (c", "D", 7, 8, 3, 99, 12)
    assert parse_pid_stat(line) == ("a) b (c", "D", 15, 3, 99, 12)
    assert parse_pid_stat("42 (x) S 1 2") is None
    assert parse_pid_stat(line.replace(" 7 8 ", " 7 x ")) is None
    assert parse_status_uid("Name:\tx\nUid:\t1000\t1000\t1000\t1000\n") == 1000
    assert parse_status_uid("Uid:\t²\n") is None
    assert parse_passwd("root:x:0:0::/:/bin/sh\nbad\nu:x:²:1::/:\n") == ({0: "root"}, 2)


_STAT = (HOST / "proc" / "100" / "stat").read_text()
_STATUS = (HOST / "proc" / "100" / "status").read_text()
_PASSWD = (HOST / "etc" / "passwd").read_text()


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(0, 400))
def test_process_parsers_never_raise(text: str, cut: int) -> None:
    for sample in (text, _STAT[:cut], _STAT[:cut] + text, text + _STAT):
        parsed = parse_pid_stat(sample)
        assert parsed is None or (parsed[2] >= 0 and parsed[5] >= 0)
    for sample in (text, _STATUS[:cut] + text):
        parse_status_uid(sample)
    for sample in (text, _PASSWD[:cut] + text):
        parse_passwd(sample)


_DENIED_SCRIPT = """
import json, logging, sys
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import CollectorContext
from otel_sysops.settings import load_settings
from instrumentation.process import ProcessCollector
from tests.instrumentation._collect import points

records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("instrumentation").addHandler(Keep())
logging.getLogger("instrumentation").setLevel(logging.INFO)
root = sys.argv[1]
settings = load_settings(None, {"procfs": root + "/proc", "host_root": root, "prometheus": {"enabled": False},
                                "instrumentation": {"process": {"top_n": 2}}}, environ={})
pipe = Pipeline(settings, load=False)
ctx = CollectorContext("process", settings, pipe.files, pipe.errors)
pipe.add_collector("process", ProcessCollector(ctx))
for _ in range(3):
    data = pipe.tick().data
fds = {str(dict(k)["process.pid"]): v for k, v in points(data, "process.unix.file_descriptor.count").items()}
memory = sorted(dict(k)["process.pid"] for k in points(data, "process.memory.usage"))
errors = {kind: n for (_, kind), n in pipe.errors.snapshot().items()}
print(json.dumps({"fds": fds, "memory": memory, "errors": errors,
                  "logs": [r for r in records if "descriptors" in r]}))
pipe.close(1.0)
"""


@pytest.mark.slow
def test_unreadable_fd_directory_is_skipped_and_counted_once(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    setpriv = need_binary("setpriv")
    shutil.copytree(HOST, tmp_path, symlinks=True, dirs_exist_ok=True)
    (tmp_path / "proc" / "200" / "fd").chmod(0)
    # Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH is refused like another user would be.
    drop = "-dac_override,-dac_read_search"
    out = subprocess.run(
        [
            setpriv,
            f"--bounding-set={drop}",
            f"--inh-caps={drop}",
            "--",
            sys.executable,
            "-c",
            _DENIED_SCRIPT,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["memory"] == [1, 200]
    assert result["fds"] == {"1": 3}  # postgres's descriptors are left out, its other series stay
    assert result["errors"]["permission"] == 1  # three ticks, counted once
    assert len(result["logs"]) == 1


def test_open_descriptors_of_a_real_process_by_size_and_by_listing(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Linux >= 6.2 reports a live process's descriptor count as its fd directory's size: the
    collector stats instead of listing, and both ways give the listing's count. A frozen tree
    (whose directories have sizes of their own) is always listed."""
    import platform
    import subprocess
    import sys

    from instrumentation.process import fd_dirs_report_counts

    extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=extra,
    )
    try:
        # Past its start-up (which opens and closes files): its descriptors stay as they are.
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        _, collector = _processes(make_settings(procfs="/proc", host_root="/"))
        listed = len(os.listdir(f"/proc/{child.pid}/fd"))
        assert listed >= 8  # stdin, stdout, stderr and the five passed
        kernel = tuple(int(x) for x in platform.release().split(".")[:2] if x.isdecimal())
        assert collector._fd_by_size == (kernel >= (6, 2))
        assert collector._fd_count(child.pid) == listed
        collector._fd_by_size = False
        assert collector._fd_count(child.pid) == listed
    finally:
        for fd in extra:
            os.close(fd)
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert not fd_dirs_report_counts(str(HOST / "proc"))
    _, frozen = _processes(_settings(make_settings, HOST))
    assert frozen._fd_by_size is False
