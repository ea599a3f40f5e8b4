"""Shared fixtures: free ports, settings builders, and binaries that must exist in CI."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_sysops.settings import Settings, load_settings

FIXTURES = Path(__file__).parent / "fixtures"
# .ci/run sets STRICT_TESTS=1 (not a SYSOPS_* name: the agent refuses unknown SYSOPS_* variables):
# a test that would skip for a missing binary or package fails instead.
STRICT = os.environ.get("STRICT_TESTS") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip the test when `condition` is false, except under STRICT_TESTS=1 where it fails."""
    if condition:
        return
    if STRICT:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def need_binary(name: str) -> str:
    """Return the path of an executable, or skip (fail in CI) when it is absent."""
    path = shutil.which(name)
    need(path is not None, f"{name} is not installed")
    assert path is not None
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Settings]:
    """Build Settings from keyword overrides only, ignoring the caller's SYSOPS_* environment."""
    for key in list(os.environ):
        if key.startswith(("SYSOPS_", "OTEL_")):
            monkeypatch.delenv(key)

    def build(**overrides: Any) -> Settings:
        # Never the default port: an agent already running on this machine holds it.
        overrides["prometheus"] = {"enabled": False, "port": free_port(), **overrides.get("prometheus", {})}
        return load_settings(None, overrides, environ={})

    return build


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """Undo a command's `setup_logging` run in-process.

    Its handler holds this test's captured stderr, closed once the test ends: a later record (from a
    thread another test left shutting down) would fail with "I/O operation on closed file". pytest's
    own per-phase capture handlers come and go by themselves and are left alone.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers and type(handler).__name__ != "LogCaptureHandler":
            root.addHandler(handler)
    root.setLevel(level)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without SYSOPS_* and OTEL_* variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(extra)
    return env


class Command:
    """`python -m otel_sysops <args>` in a subprocess, its stderr lines collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "otel_sysops", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        self.lines.extend(self.process.stderr)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = 60) -> None:
        """Poll until `condition()` is true while the command runs; fail naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.text
            assert time.monotonic() < deadline, f"{what}:\n{self.text}"
            time.sleep(0.02)

    def wait_for_line(self, text: str, timeout: float = 60) -> None:
        """Wait until a stderr line holds `text`."""
        self.wait_for(
            lambda: any(text in line for line in list(self.lines)), f"{text!r} never printed", timeout
        )

    def stop(self) -> None:
        """SIGTERM and wait 30 s (past that: killed, and the TimeoutExpired raised); join the reader."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
                    raise
        finally:
            self._reader.join(10)
