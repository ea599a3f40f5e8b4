"""Test doubles behind the AlertSink protocol, and small waiting helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from otel_sysops.alerts import Finding


class RecordingSink:
    """An AlertSink that keeps every finding it is given (thread-safe, like the real one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.findings: list[Finding] = []

    def submit(self, finding: Finding) -> None:
        with self._lock:
            self.findings.append(finding)

    def firing(self, rule: str) -> list[Finding]:
        with self._lock:
            return [f for f in self.findings if f.rule == rule and f.severity is not None]

    def victims(self) -> list[str]:
        return [f.attributes["process.executable.name"] for f in self.firing("log.oom_kill")]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` from a thread that is not the loop; return whether it became true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Await until `predicate` holds (checked every 20 ms on the loop); return whether it did in time."""
    import anyio

    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.02)
        return True
    return predicate()
