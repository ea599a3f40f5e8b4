"""A followed file whose read never returns (a hung NFS or FUSE mount) does not hold up shutdown:
the real agent, in a subprocess, gets SIGTERM while its file reader is blocked in the kernel and
exits within the deadline, with one line naming the file.

The first test blocks a stand-in follower in open(2) on a FIFO; the second follows a real file on
a real FUSE mount (tests/logs/hungfs.py) whose server stops answering, so `otel-sysops run`'s own
follower is stuck in stat or read as on a hung mount.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

from .helpers import wait_until
from .hungfs import FuseUnavailableError, HungFS

# The agent with the real log service; the file source's follower is swapped for one that blocks
# in open(2) on a FIFO nobody writes to: a real syscall that no signal ends, as on a hung mount.
SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from pathlib import Path

    import anyio

    from otel_sysops.agent import Agent
    from otel_sysops.app import log_service
    from otel_sysops.logs._sources import FileSource
    from otel_sysops.settings import load_settings

    fifo, marker = Path(sys.argv[1]), Path(sys.argv[2])


    class HungFollower:
        behind = False
        position = 0

        def poll(self):
            marker.write_text(str(os.getpid()))
            with open(fifo, "rb") as blocked:  # never returns: no writer
                return [blocked.read().decode()]

        def snapshot(self):
            return None

        def close(self):
            pass


    def hung_logs(ctx):
        service = log_service(ctx)
        for source in service.sources:
            if isinstance(source, FileSource):
                source.follower = HungFollower()
        return service


    overrides = {
        "interval": 0.5,
        "prometheus": {"enabled": False, "port": 0},  # any free port: not the one a real agent holds
        "logs": {"kmsg": False, "journal": False, "files": [str(fifo)]},
    }
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    settings = load_settings(None, overrides, environ={})
    agent = Agent(settings, None, overrides, service_factories=[hung_logs])
    sys.exit(anyio.run(agent.run, backend="asyncio"))
    """
)


def test_sigterm_with_a_file_read_stuck_in_the_kernel_still_exits(tmp_path: Path) -> None:
    fifo, marker = tmp_path / "hung.log", tmp_path / "entered"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(fifo), str(marker)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert wait_until(marker.exists, timeout=60.0), "the reader never started"
        # Whether the reader is already inside open(2) or about to enter it, it stays there.
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=60.0)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not end the agent while a file read was stuck")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err
    stuck = [line for line in err.splitlines() if "stuck" in line]
    assert len(stuck) == 1, err
    assert str(fifo) in stuck[0]
    assert stuck[0].startswith("WARNING log file ")


@pytest.fixture
def hung_mount(tmp_path: Path) -> Iterator[HungFS]:
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    try:
        with HungFS(mountpoint) as fs:
            fs.files["syslog"] = b"Nov 22 03:17:40 web-01 kernel: booted\n"
            yield fs
    except FuseUnavailableError as exc:
        pytest.skip(f"needs a FUSE mount (root and /dev/fuse): {exc}")


OOM_LINE = b"Nov 22 03:17:42 web-01 kernel: Out of memory: Killed process 4242 (java) total-vm:1kB\n"


class AgentProcess:
    """`otel-sysops run` following `log`, its stderr lines collected as they come."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
        env.update(
            SYSOPS_INTERVAL="0.5",
            SYSOPS_PROMETHEUS__HOST="127.0.0.1",
            SYSOPS_PROMETHEUS__PORT=str(self.port),
            SYSOPS_LOGS__FILES=json.dumps([str(log)]),
            SYSOPS_LOGS__KMSG="false",
            SYSOPS_LOGS__JOURNAL="false",
            SYSOPS_LOGS__POLL_INTERVAL="0.05",
        )
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", "run"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    def logged(self, *words: str) -> bool:
        return any(all(w in line for w in words) for line in list(self.lines))

    def ready(self) -> bool:
        """Return whether /readyz answers 200 (a first tick done)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5) as resp:
                return int(resp.status) == 200
        except OSError:
            return False

    def stop(self) -> int:
        """SIGTERM, then wait (a generous bound); fail the test when the agent does not end."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60.0)
        except subprocess.TimeoutExpired:
            pytest.fail("SIGTERM did not end the agent while its followed file's mount was hung")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # a wait on a FUSE server ends on SIGKILL
            self.process.wait()
        self._reader.join(10)

    def text(self) -> str:
        return "".join(self.lines)


def _one_stuck_line_at_shutdown(agent: AgentProcess, log: Path) -> None:
    stuck = [line for line in agent.lines if "left behind" in line]
    assert len(stuck) == 1, agent.text()
    assert str(log) in stuck[0]
    assert " WARNING " in stuck[0]


@pytest.mark.slow
def test_sigterm_with_a_followed_file_on_a_hung_fuse_mount_exits_naming_the_file(
    hung_mount: HungFS,
) -> None:
    fs = hung_mount
    log = fs.mountpoint / "syslog"
    agent = AgentProcess(log)
    try:
        # The agent's follower reads the file through the mount: a line appended is alerted on.
        assert wait_until(fs.looked_up_after_open, timeout=60.0), agent.text()
        fs.files["syslog"] += OOM_LINE
        assert wait_until(lambda: agent.logged("FIRING", "java"), 60.0), agent.text()
        fs.hang()
        assert fs.wait_blocked(60.0), "the follower never touched the hung mount"
        code = agent.stop()
    finally:
        agent.kill()
    assert code == 0, agent.text()
    _one_stuck_line_at_shutdown(agent, log)


@pytest.mark.slow
def test_a_mount_hung_before_the_start_does_not_stop_the_agent_and_sigterm_still_exits(
    hung_mount: HungFS,
) -> None:
    fs = hung_mount
    log = fs.mountpoint / "syslog"
    fs.hang()
    agent = AgentProcess(log)
    try:
        # The open of the followed file waits on the server; the agent starts and ticks anyway.
        assert wait_until(lambda: agent.logged("opening it has been stuck", str(log)), 60.0), agent.text()
        assert wait_until(agent.ready, 60.0), agent.text()
        code = agent.stop()
    finally:
        agent.kill()
    assert code == 0, agent.text()
    _one_stuck_line_at_shutdown(agent, log)


@pytest.mark.slow
def test_a_file_whose_mount_was_hung_at_start_is_followed_once_it_answers(hung_mount: HungFS) -> None:
    fs = hung_mount
    log = fs.mountpoint / "syslog"
    fs.hang()
    agent = AgentProcess(log)
    try:
        assert wait_until(lambda: agent.logged("opening it has been stuck", str(log)), 60.0), agent.text()
        fs.answer()
        assert wait_until(fs.looked_up_after_open, timeout=60.0), agent.text()
        fs.files["syslog"] += OOM_LINE
        assert wait_until(lambda: agent.logged("FIRING", "java"), 60.0), agent.text()
        code = agent.stop()
    finally:
        agent.kill()
    assert code == 0, agent.text()
    assert not [line for line in agent.lines if "left behind" in line], agent.text()
