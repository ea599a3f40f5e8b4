"""The plugin interface: collectors (`otel_sysops.instrumentation`) and analyzers (`otel_sysops.analyzers`).

A plugin is an entry point naming a class. The core never imports one by name: a third-party
package adds a collector by declaring an entry point in the same group.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from opentelemetry.metrics import Meter

from .churn import ChurningMeter
from .errors import CollectorUnavailableError
from .findings import Finding
from .settings import Settings

if TYPE_CHECKING:
    from .store import RingStore

_log = logging.getLogger(__name__)

INSTRUMENTATION_GROUP = "otel_sysops.instrumentation"
ANALYZERS_GROUP = "otel_sysops.analyzers"


def read_text_file(path: str | os.PathLike[str]) -> str:
    """Return a file's text as `Path.read_text(encoding="utf-8", errors="replace")` does, with
    raw `os.open`/`os.read` calls (no buffered file object, no stat): a /proc or /sys file is
    read in one or two reads. Raises the same OSError kinds."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if data:
            chunks = [data]
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            if len(chunks) > 1:
                data = b"".join(chunks)
    finally:
        os.close(fd)
    text = data.decode("utf-8", "replace")
    if "\r" in text:  # text mode's universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


class TickFiles:
    """Read each file at most once per tick, however many instruments need it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[Path, str | OSError] = {}

    def read_text(self, path: Path) -> str:
        """Return the file's text, read once this tick; raise an equal OSError on every call.

        The error is kept without its traceback and each call raises a copy: a kept, re-raised
        exception would hold its frames (a reference cycle through this frame's locals), so a
        missing file would leave each tick's garbage to the cyclic GC."""
        with self._lock:
            cached = self._cache.get(path)
        if cached is None:
            try:
                cached = read_text_file(path)
            except OSError as exc:
                cached = exc.with_traceback(None)
            with self._lock:
                self._cache[path] = cached
        if isinstance(cached, OSError):
            raise copy.copy(cached)
        return cached

    def clear(self) -> None:
        """Forget everything read; called by the pipeline at the start of each tick."""
        with self._lock:
            self._cache.clear()


class ErrorCounter:
    """Count per-plugin errors by kind (exported as `otel_sysops.collector.errors`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, plugin: str, kind: str, n: int = 1) -> None:
        """Add `n` errors of `kind` (e.g. "malformed_line", "permission") for `plugin`."""
        if n:
            with self._lock:
                self._counts[(plugin, kind)] += n

    def snapshot(self) -> dict[tuple[str, str], int]:
        """Return the cumulative counts."""
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class CollectorContext:
    """What a collector is given: settings, the roots it reads under, shared per-tick helpers."""

    name: str
    settings: Settings
    files: TickFiles = field(default_factory=TickFiles)
    errors: ErrorCounter = field(default_factory=ErrorCounter)

    @property
    def procfs(self) -> Path:
        return self.settings.procfs

    @property
    def sysfs(self) -> Path:
        return self.settings.sysfs

    @property
    def host_root(self) -> Path:
        return self.settings.host_root

    def count_error(self, kind: str, n: int = 1) -> None:
        """Count `n` errors of `kind` against this collector."""
        self.errors.add(self.name, kind, n)


S = TypeVar("S")


class Collector(ABC, Generic[S]):
    """One metric family. `sample()` does the I/O once per tick; callbacks only read `snapshot`.

    Raise CollectorUnavailableError from `__init__` when the family cannot run on this host.
    """

    def __init__(self, ctx: CollectorContext) -> None:
        self.ctx = ctx
        self.snapshot: S | None = None

    @abstractmethod
    def sample(self, now: float) -> S:
        """Read the sources once and return this tick's snapshot (`now`: seconds, monotonic)."""

    @abstractmethod
    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        """Create the observable instruments; their callbacks read `self.snapshot` and never do I/O."""

    def collect(self, now: float) -> None:
        """Replace the snapshot; on failure the family reports nothing this tick."""
        self.snapshot = None
        self.snapshot = self.sample(now)

    def close(self) -> None:
        """Release what the collector holds (threads, handles)."""


@dataclass(frozen=True)
class AnalyzerContext:
    """What an analyzer is given: settings and the ring store it reads."""

    name: str
    settings: Settings
    store: RingStore


class Analyzer(ABC):
    """Turn the ring store into findings, once per tick after the store is filled."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        self.ctx = ctx

    def register(self, meter: Meter, churn: ChurningMeter) -> None:  # noqa: B027 - optional hook
        """Create instruments that export the analyzer's own output (scores, forecasts)."""

    @abstractmethod
    def analyze(self, now: float) -> Iterable[Finding]:
        """Return this tick's findings (`now`: seconds since the epoch of the latest tick)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the analyzer holds (state files)."""


P = TypeVar("P")


def _selected(eps: Iterable[EntryPoint], enabled: list[str] | None, disabled: list[str]) -> list[EntryPoint]:
    chosen = [ep for ep in eps if (enabled is None or ep.name in enabled) and ep.name not in disabled]
    return sorted(chosen, key=lambda ep: ep.name)


def load_plugins(
    group: str,
    build: Callable[[str, type[P]], P],
    enabled: list[str] | None = None,
    disabled: list[str] | None = None,
    available: Iterable[EntryPoint] | None = None,
    skipped: dict[str, str] | None = None,
) -> dict[str, P]:
    """Instantiate every plugin of an entry-point group with `build(name, cls)`.

    A plugin that raises CollectorUnavailableError is skipped with one INFO line; one that fails
    to import or construct is skipped with one WARNING line. Nothing here stops the agent.
    `available` replaces the installed entry points (tests, embedding); `skipped`, when given,
    receives each plugin left out and why.
    """
    skipped = {} if skipped is None else skipped
    installed = list(entry_points(group=group) if available is None else available)
    plugins: dict[str, P] = {}
    for ep in _selected(installed, enabled, disabled or []):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party plugin must not stop the agent
            _log.warning("plugin %s (%s) cannot be loaded: %s", ep.name, ep.value, exc)
            skipped[ep.name] = f"cannot be loaded: {exc}"
            continue
        try:
            plugins[ep.name] = build(ep.name, cls)
        except CollectorUnavailableError as exc:
            _log.info("plugin %s skipped: %s", ep.name, exc)
            skipped[ep.name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - isolate plugin construction failures
            _log.warning("plugin %s failed to start: %s: %s", ep.name, type(exc).__name__, exc)
            skipped[ep.name] = f"failed to start: {type(exc).__name__}: {exc}"
    if enabled:
        missing = sorted(set(enabled) - {ep.name for ep in installed})
        for name in missing:
            _log.warning("plugin %s is enabled in the settings but not installed (group %s)", name, group)
    return plugins
