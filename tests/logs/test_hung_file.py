"""A followed file whose read never returns (a hung NFS or FUSE mount) does not hold up shutdown:
the real agent, in a subprocess, gets SIGTERM while its file reader is blocked in the kernel and
exits within the deadline, with one line naming the file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import wait_until

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
        "prometheus": {"enabled": False},
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
