"""Blocking file I/O on a daemon thread of its own, so a call stuck in the kernel never holds up exit.

A followed file on a hung filesystem (NFS, FUSE) blocks `read`, `fstat` or `stat` in the kernel
for as long as the server is away; no signal wakes it. anyio's worker threads are joined when the
interpreter exits, so a stuck one would keep the process alive after SIGTERM. A `DaemonWorker`
runs one source's calls on its own daemon thread: the waiting task can be cancelled at any
moment, and the process exits even while the thread is still stuck.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class _Job:
    __slots__ = ("abandoned", "func", "future", "loop", "started")

    def __init__(
        self, func: Callable[[], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]
    ) -> None:
        self.func, self.loop, self.future = func, loop, future
        self.started = self.abandoned = False


class DaemonWorker:
    """Run blocking calls one at a time on a daemon thread; report how long the current one has run."""

    def __init__(self, name: str) -> None:
        self.name = name
        # Each thread has its own queue: a thread still stuck after `stop` never takes a new job.
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._lock = threading.Lock()
        self._busy_since: float | None = None

    async def call(self, func: Callable[[], T]) -> T:
        """Run `func` on the worker thread and return its result; cancellable at any time (a call
        cancelled before it started never runs; one already running runs to its end, unwaited)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(self._jobs,), name=self.name, daemon=True).start()
        job = _Job(func, loop, future)
        self._jobs.put(job)
        try:
            return await future
        except BaseException:
            with self._lock:
                job.abandoned = not job.started
            raise

    def busy_for(self) -> float | None:
        """Return seconds the current call has run (None: idle)."""
        with self._lock:
            since = self._busy_since
        return None if since is None else time.monotonic() - since

    async def settle(self, deadline: float) -> float | None:
        """Wait up to `deadline` seconds (shielded) for the current call to end; return how long it
        has run when it has not (None: idle)."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(deadline):
            while self.busy_for() is not None:
                await anyio.sleep(0.02)
        return self.busy_for()

    def stop(self) -> None:
        """Let the thread end once its current call (if any) returns."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    def _serve(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            with self._lock:
                if job.abandoned:
                    continue
                job.started = True
                self._busy_since = time.monotonic()
            try:
                result = job.func()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task, which raises it
                _settle(job.loop, job.future, None, exc)
            else:
                _settle(job.loop, job.future, result, None)
            finally:
                with self._lock:
                    self._busy_since = None


def _settle(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: BaseException | None
) -> None:
    def done() -> None:
        if future.done():  # the awaiting task was cancelled
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(done)
