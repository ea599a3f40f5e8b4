"""The sources against real files and processes: a syslog file rotated under the reader, a kmsg
file and FIFO in the kernel's record format, fake `dmesg` and `journalctl` executables."""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from otel_sysops.alerts import Severity
from otel_sysops.logs import LogAnalyzer, Matcher, builtin_patterns
from otel_sysops.logs._follow import FileFollower
from otel_sysops.logs._service import LogService, build_log_service
from otel_sysops.logs._sources import FileSource, JournalSource, KmsgSource, boot_time
from otel_sysops.settings import Settings

from .helpers import RecordingSink, eventually

OOM = "Out of memory: Killed process {pid} ({name}) total-vm:8123456kB, anon-rss:1kB"


def _analyzer() -> tuple[LogAnalyzer, RecordingSink]:
    sink = RecordingSink()
    return LogAnalyzer(Matcher(builtin_patterns()), sink, resubmit_after=0.0), sink


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _run_service(service: LogService, body: Callable[[], Awaitable[object]]) -> None:
    """Run `service` in a task group while the async `body` drives it; then cancel it."""

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.run)
            await body()
            tg.cancel_scope.cancel()

    anyio.run(main, backend="asyncio")


def test_syslog_file_followed_across_rename_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    _append(log, "Nov 22 03:00:00 web-01 kernel: " + OOM.format(pid=1, name="before_start"))
    analyzer, sink = _analyzer()
    source = FileSource(analyzer, log, poll_interval=0.05)
    service = LogService(analyzer, [source])

    async def body() -> None:
        _append(log, "Nov 22 03:17:42 web-01 kernel: [ 12.3] " + OOM.format(pid=4242, name="java"))
        assert await eventually(lambda: sink.victims() == ["java"])
        # A line written just before logrotate renames the file, then the daemon reopens.
        with log.open("a") as writer:
            writer.write("Nov 22 03:17:43 web-01 kernel: " + OOM.format(pid=5, name="postgres") + "\n")
            writer.flush()
            log.rename(tmp_path / "syslog.1")
        _append(log, "Nov 22 03:17:44 web-01 kernel: " + OOM.format(pid=6, name="python3"))
        assert await eventually(lambda: len(sink.victims()) == 3)
        assert sink.victims() == ["java", "postgres", "python3"]
        # copytruncate
        await anyio.sleep(0.2)
        os.truncate(log, 0)
        _append(log, "Nov 22 03:17:45 web-01 kernel: " + OOM.format(pid=7, name="nginx"))
        assert await eventually(lambda: len(sink.victims()) == 4)
        await anyio.sleep(0.3)  # a few more polls: nothing is read twice

    _run_service(service, body)
    assert sink.victims() == ["java", "postgres", "python3", "nginx"]
    assert analyzer.stats.matches["oom_kill"] == 4
    assert isinstance(source.follower, FileFollower)
    assert source.follower.rotations == 1
    assert source.follower.truncations == 1
    assert analyzer.stats.lines[("file", str(log))] == 4


def _kmsg_record(seq: int, usec: int, message: str, prio: int = 3) -> str:
    return f"{prio},{seq},{usec},-;{message}\n SUBSYSTEM=memory\n"


def test_kmsg_file_starts_at_the_end_and_converts_time(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(_kmsg_record(1, 1_000_000, OOM.format(pid=1, name="old")))
    analyzer, sink = _analyzer()
    source = KmsgSource(analyzer, kmsg, dmesg=None, poll_interval=0.05)

    async def body() -> None:
        assert await eventually(lambda: source.active)  # opened and moved to the end
        _append(kmsg, _kmsg_record(2, 5_250_000, OOM.format(pid=4242, name="java")).rstrip("\n"))
        assert await eventually(lambda: sink.victims() == ["java"])

    _run_service(LogService(analyzer, [source]), body)
    (finding,) = sink.firing("log.oom_kill")
    assert finding.timestamp == pytest.approx(boot_time() + 5.25, abs=0.5)
    assert source.last_seq == 2


def test_kmsg_replay_reads_the_whole_buffer_once(tmp_path: Path) -> None:
    kmsg = tmp_path / "kmsg"
    kmsg.write_text(
        _kmsg_record(1, 1, OOM.format(pid=1, name="a"))
        + "garbage without a header\n"
        + _kmsg_record(2, 2, OOM.format(pid=2, name="b"))
    )
    analyzer, sink = _analyzer()
    source = KmsgSource(analyzer, kmsg, replay=True, dmesg=None, poll_interval=0.05)

    async def body() -> None:
        assert await eventually(lambda: len(sink.victims()) == 2)
        await anyio.sleep(0.2)

    _run_service(LogService(analyzer, [source]), body)
    assert sink.victims() == ["a", "b"]
    assert analyzer.stats.errors[("kmsg", "malformed_record")] == 1


def test_kmsg_fifo_stream(tmp_path: Path) -> None:
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    analyzer, sink = _analyzer()
    source = KmsgSource(analyzer, fifo, dmesg=None, poll_interval=0.05)

    async def body() -> None:
        assert await eventually(lambda: source.active)  # the reader has the FIFO open
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        try:
            for seq, name in enumerate(["x", "y", "z"], start=10):
                os.write(fd, _kmsg_record(seq, seq * 1000, OOM.format(pid=seq, name=name)).encode())
            assert await eventually(lambda: len(sink.victims()) == 3)
        finally:
            os.close(fd)

    _run_service(LogService(analyzer, [source]), body)
    assert sink.victims() == ["x", "y", "z"]


@pytest.mark.slow
def test_unreadable_kmsg_falls_back_to_dmesg_follow(tmp_path: Path) -> None:
    args_file = tmp_path / "args"
    dmesg = _script(
        tmp_path / "dmesg",
        f"""import sys, time
open({str(args_file)!r}, "w").write(" ".join(sys.argv[1:]))
print("<6>[    1.000000] Linux version 6.1", flush=True)
print("<3>[  123.456789] {OOM.format(pid=4242, name="java")}", flush=True)
time.sleep(60)
""",
    )
    analyzer, sink = _analyzer()
    source = KmsgSource(analyzer, tmp_path / "no-such-kmsg", dmesg=str(dmesg), poll_interval=0.05)

    async def body() -> None:
        assert await eventually(lambda: sink.victims() == ["java"])
        assert source.active

    _run_service(LogService(analyzer, [source]), body)
    assert args_file.read_text() == "--follow-new --raw"
    (finding,) = sink.firing("log.oom_kill")
    assert finding.timestamp == pytest.approx(boot_time() + 123.456789, abs=0.5)


def _fake_journalctl(tmp_path: Path, calls: Path) -> Path:
    """A journalctl that prints two entries (or one after a cursor), then exits with an error."""
    first = [
        {
            "__CURSOR": "c1",
            "__REALTIME_TIMESTAMP": "1763781462000000",
            "MESSAGE": OOM.format(pid=1, name="java"),
            "_TRANSPORT": "kernel",
        },
        {
            "__CURSOR": "c2",
            "__REALTIME_TIMESTAMP": "1763781463000000",
            "MESSAGE": "sshd[9]: Accepted publickey",
            "_TRANSPORT": "syslog",
        },
    ]
    after = [
        {
            "__CURSOR": "c3",
            "MESSAGE": list(OOM.format(pid=2, name="postgres").encode()),
            "_TRANSPORT": "kernel",
        }
    ]
    return _script(
        tmp_path / "journalctl",
        f"""import sys, time
with open({str(calls)!r}, "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
entries = {after!r} if any(a.startswith("--after-cursor=") for a in sys.argv) else {first!r}
import json
for e in entries:
    print(json.dumps(e), flush=True)
print("not json", flush=True)
print("journalctl: simulated failure", file=sys.stderr, flush=True)
sys.exit(1)
""",
    )


@pytest.mark.slow
def test_journal_restarted_after_it_dies_resumes_at_its_cursor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = tmp_path / "calls"
    journalctl = _fake_journalctl(tmp_path, calls)
    analyzer, sink = _analyzer()
    source = JournalSource(analyzer, str(journalctl))

    async def body() -> None:
        assert await eventually(lambda: len(sink.victims()) == 2, timeout=15)
        # Each run ends with a line that is not JSON.
        assert await eventually(lambda: analyzer.stats.errors.get(("journal", "malformed_entry"), 0) >= 2)

    with caplog.at_level(logging.DEBUG, logger="otel_sysops.logs"):
        _run_service(LogService(analyzer, [source]), body)
    assert sink.victims() == ["java", "postgres"]
    invocations = calls.read_text().splitlines()
    assert invocations[0] == "--follow --output=json --no-pager --lines=0"
    assert invocations[1] == "--follow --output=json --no-pager --after-cursor=c2"
    assert sink.firing("log.oom_kill")[0].timestamp == 1763781462.0
    assert analyzer.stats.errors[("journal", "malformed_entry")] >= 2
    # Only the agent's own lines: asyncio's child watcher threads from earlier tests may log here too.
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("otel_sysops")
    ]
    assert len(warnings) == 1  # reported once, retried quietly
    assert "exited with status 1: journalctl: simulated failure" in warnings[0].getMessage()


@pytest.mark.slow
def test_journal_skips_kernel_lines_while_kmsg_is_read(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    analyzer, sink = _analyzer()
    kmsg_active = threading.Event()
    kmsg_active.set()
    source = JournalSource(analyzer, str(_fake_journalctl(tmp_path, calls)), skip_kernel=kmsg_active.is_set)

    async def body() -> None:
        # Both runs' entries read: two kernel ones (skipped, still counted as lines) and sshd's.
        assert await eventually(lambda: analyzer.stats.lines.get(("journal", ""), 0) >= 3, timeout=15)

    _run_service(LogService(analyzer, [source]), body)
    assert sink.victims() == []
    assert len(calls.read_text().splitlines()) >= 2


@pytest.mark.slow
def test_a_failing_source_never_stops_the_others(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    analyzer, sink = _analyzer()
    broken = JournalSource(analyzer, str(_script(tmp_path / "journalctl", "import sys; sys.exit(3)\n")))
    dead_kmsg = KmsgSource(analyzer, tmp_path / "no-kmsg", dmesg=None)
    service = LogService(analyzer, [broken, dead_kmsg, FileSource(analyzer, log, poll_interval=0.05)])

    def failed(kind: str) -> int:
        return analyzer.stats.snapshot()[2].get((kind, "failure"), 0)

    async def body() -> None:
        # Both have failed (however long the journal stand-in takes to start and exit), then the
        # file source still reads.
        assert await eventually(lambda: failed("journal") >= 1 and failed("kmsg") >= 1, timeout=60)
        _append(log, OOM.format(pid=4242, name="java"))
        assert await eventually(lambda: sink.victims() == ["java"], timeout=60)

    _run_service(service, body)
    assert analyzer.stats.errors[("journal", "failure")] >= 1
    assert analyzer.stats.errors[("kmsg", "failure")] == 1


def analyzer_errors(service: LogService) -> int:
    return service.analyzer.stats.errors.get(("kmsg", "failure"), 0)


def test_defaults_on_a_host_without_kmsg_or_journal_log_info_only(
    tmp_path: Path, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(
        host_root=str(tmp_path),
        logs={
            "kmsg_path": str(tmp_path / "kmsg"),
            "dmesg_path": "",
            "journalctl_path": str(tmp_path / "nope"),
        },
    )
    with caplog.at_level(logging.INFO, logger="otel_sysops.logs"):
        service = build_log_service(settings, RecordingSink())
        assert service is not None
        assert [s.kind for s in service.sources] == ["kmsg"]

        async def body() -> None:
            assert await eventually(lambda: analyzer_errors(service) >= 1)
            await anyio.sleep(0.1)

        _run_service(service, body)
    assert all(r.levelno == logging.INFO for r in caplog.records)
    messages = [r.getMessage() for r in caplog.records]
    assert any("no /var/log/syslog or /var/log/messages" in m for m in messages)
    assert any("nope not found" in m for m in messages)
    assert sum("kmsg" in m and "cannot be read" in m for m in messages) == 1


def test_syslog_file_detected_by_distribution(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "var/log").mkdir(parents=True)
    (tmp_path / "var/log/syslog").write_text("")
    (tmp_path / "var/log/messages").write_text("")
    (tmp_path / "etc/os-release").write_text('ID="rhel"\nID_LIKE="fedora"\n')
    off = {"kmsg": False, "journal": False}
    service = build_log_service(make_settings(host_root=str(tmp_path), logs=off), RecordingSink())
    assert service is not None
    assert [s.name for s in service.sources] == [f"file {tmp_path / 'var/log/messages'}"]
    (tmp_path / "etc/os-release").write_text("ID=debian\n")
    service = build_log_service(make_settings(host_root=str(tmp_path), logs=off), RecordingSink())
    assert service is not None
    assert [s.name for s in service.sources] == [f"file {tmp_path / 'var/log/syslog'}"]
    assert (
        build_log_service(make_settings(host_root=str(tmp_path), logs={**off, "files": []}), RecordingSink())
        is None
    )
    assert build_log_service(make_settings(logs={"enabled": False}), RecordingSink()) is None


def test_nvidia_xid_severity_reaches_the_finding(tmp_path: Path) -> None:
    analyzer, sink = _analyzer()
    analyzer.feed("kmsg", ["NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus."])
    (finding,) = sink.findings
    assert finding.severity == Severity.EMERGENCY
    assert json.dumps(dict(finding.attributes))  # plain strings: ready for any channel


@pytest.mark.slow
def test_journalctl_found_on_path_gets_the_host_root(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _fake_journalctl(bin_dir, calls)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    host = tmp_path / "host"
    (host / "run/log/journal").mkdir(parents=True)
    sink = RecordingSink()
    settings = make_settings(host_root=str(host), logs={"kmsg": False, "files": []})
    service = build_log_service(settings, sink)
    assert service is not None
    assert [s.kind for s in service.sources] == ["journal"]

    async def body() -> None:
        assert await eventually(lambda: sink.victims() == ["java"])

    _run_service(service, body)
    assert calls.read_text().splitlines()[0] == f"--follow --output=json --no-pager --root={host} --lines=0"
