"""The agent's own budget: watch RSS, CPU and file descriptors; alert and shed work past a limit.

Each tick the watch reads the agent's usage. A limit exceeded for `budget.for_seconds` raises a
finding (rule `otel_sysops.budget`) through the alert pipeline and sheds one step of optional
work; while still over, one more step per `for_seconds`. Once every limit has been met again for
`for_seconds`, the last step is reversed, one at a time, and the finding clears when none is left.
Every step and reversal is logged.

The order (cheapest loss first):
  1. per-series exports: every plugin with a `shed(level)` hook is told level 1 (an analyzer
     exports per-family summaries instead of per-series values);
  2. process-scan frequency: the `process` collector samples every 4th tick;
  3. the anomaly step's cadence: the `anomaly` analyzer runs every 4th tick.
Plugins opt into step 1 by defining `shed(self, level: int) -> None`; steps 2 and 3 are the
pipeline's cadence, which needs nothing from the plugin.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .findings import AlertSink, Finding, Severity
from .plugin import read_text_file
from .settings import BudgetSettings

_PAGE = os.sysconf("SC_PAGE_SIZE")

_log = logging.getLogger(__name__)

RULE = "otel_sysops.budget"
SLOW_CADENCE = 4


@dataclass(frozen=True, slots=True)
class Usage:
    """The agent's usage at one tick."""

    rss_mb: float
    cpu_percent: float
    fds: int


class Cadenced(Protocol):
    """What the watch needs of the pipeline: run a plugin every n-th tick, tell plugins to shed."""

    def set_cadence(self, name: str, every: int) -> bool: ...

    def shed_plugins(self, level: int) -> int: ...


@dataclass(frozen=True, slots=True)
class _Step:
    what: str
    apply: Callable[[Cadenced], str]
    revert: Callable[[Cadenced], str]


def _exports(level: int) -> Callable[[Cadenced], str]:
    def run(pipe: Cadenced) -> str:
        told = pipe.shed_plugins(level)
        return f"{told} plugin(s) told shed level {level}"

    return run


def _cadence(name: str, every: int) -> Callable[[Cadenced], str]:
    def run(pipe: Cadenced) -> str:
        found = pipe.set_cadence(name, every)
        return f"{name} every {every} tick(s)" if found else f"no {name} plugin loaded"

    return run


STEPS = (
    _Step("per-series exports", _exports(1), _exports(0)),
    _Step("process-scan frequency", _cadence("process", SLOW_CADENCE), _cadence("process", 1)),
    _Step("anomaly cadence", _cadence("anomaly", SLOW_CADENCE), _cadence("anomaly", 1)),
)


def read_usage(procfs: Path, cpu_seconds: float, wall: float, last: tuple[float, float] | None) -> Usage:
    """Return the usage of this process (CPU as a percentage of one core since `last`)."""
    rss = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        # proc(5): statm's second field is status's VmRSS in pages, and far cheaper to make.
        rss = int(read_text_file(procfs / "self" / "statm").split()[1]) * _PAGE / 2**20
    try:
        fds = len(os.listdir(procfs / "self" / "fd"))
    except OSError:
        fds = 0
    cpu = 0.0
    if last is not None and wall > last[1]:
        cpu = (cpu_seconds - last[0]) / (wall - last[1]) * 100
    return Usage(rss, cpu, fds)


class SelfWatch:
    """Decide, tick by tick, whether the agent is over its budget, and shed or restore work."""

    def __init__(
        self,
        budget: BudgetSettings,
        alerts: AlertSink,
        host: str = "",
        usage: Callable[[], Usage] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        # Real elapsed time, not the ticks' timestamps (which a replay or a test may inject).
        self._clock = clock
        self.alerts = alerts
        self.host = host
        self.level = 0  # steps applied
        self._usage = usage
        self._over_since: float | None = None
        self._under_since: float | None = None
        self._last_step = -float("inf")
        self._cpu_window: tuple[float, float] | None = None
        self._firing = False

    def over(self, usage: Usage) -> list[str]:
        """Return the limits `usage` exceeds, described."""
        b = self.budget
        out = []
        if usage.rss_mb > b.rss_max_mb:
            out.append(f"RSS {usage.rss_mb:.0f} MB > {b.rss_max_mb:g} MB")
        if usage.cpu_percent > b.cpu_max_percent:
            out.append(f"CPU {usage.cpu_percent:.1f} % > {b.cpu_max_percent:g} %")
        if usage.fds > b.fds_max:
            out.append(f"{usage.fds} open files > {b.fds_max}")
        return out

    def _measure(self, now: float, procfs: Path) -> Usage:
        if self._usage is not None:
            return self._usage()
        times = os.times()
        cpu = times.user + times.system
        window = self._cpu_window
        usage = read_usage(procfs, cpu, now, window)
        # CPU is averaged over `for_seconds`: a busy tick is not over budget by itself.
        if window is None or now - window[1] >= max(self.budget.for_seconds, 1.0):
            self._cpu_window = (cpu, now)
        return usage

    def check(self, pipe: Cadenced, procfs: Path = Path("/proc")) -> Usage:
        """Take this tick's usage; shed a step or restore one when due. Returns the usage."""
        now = self._clock()
        usage = self._measure(now, procfs)
        if not self.budget.enabled:
            return usage
        over = self.over(usage)
        hold = self.budget.for_seconds
        if over:
            self._under_since = None
            self._over_since = self._over_since if self._over_since is not None else now
            if now - self._over_since >= hold and now - self._last_step >= hold:
                self._shed(now, pipe, over)
        else:
            self._over_since = None
            self._under_since = self._under_since if self._under_since is not None else now
            if self.level and now - self._under_since >= hold and now - self._last_step >= hold:
                self._restore(now, pipe)
            elif not self.level and self._firing and now - self._under_since >= hold:
                self._firing = False
                self.alerts.submit(self._finding(None, "otel-sysops is back within its budget", now))
        return usage

    def _shed(self, now: float, pipe: Cadenced, over: list[str]) -> None:
        self._last_step = now
        reason = ", ".join(over)
        if self.level < len(STEPS):
            step = STEPS[self.level]
            result = step.apply(pipe)
            self.level += 1
            _log.warning("over budget (%s): shedding step %d, %s: %s", reason, self.level, step.what, result)
            message = f"otel-sysops over its budget ({reason}); shed {step.what}"
        else:
            _log.warning("over budget (%s) with every optional step shed", reason)
            message = f"otel-sysops over its budget ({reason}) with all optional work shed"
        self._firing = True
        self.alerts.submit(self._finding(Severity.WARNING, message, now))

    def _restore(self, now: float, pipe: Cadenced) -> None:
        self._last_step = now
        step = STEPS[self.level - 1]
        result = step.revert(pipe)
        _log.warning("within budget again: restoring step %d, %s: %s", self.level, step.what, result)
        self.level -= 1
        if self.level == 0:
            self._firing = False
            self.alerts.submit(self._finding(None, "otel-sysops is back within its budget", now))

    def _finding(self, severity: Severity | None, message: str, now: float) -> Finding:
        return Finding(
            rule=RULE,
            metric="otel_sysops.process",
            attributes={"host.name": self.host} if self.host else {},
            severity=severity,
            message=message,
            timestamp=time.time(),
        )
