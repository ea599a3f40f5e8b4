"""Ground floor: what /healthz and /readyz report, judged from ticks alone (no sink involved)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz and /readyz report."""

    alive: bool
    ready: bool
    detail: str


class TickHealth:
    """Liveness (a tick within three intervals, at least 30 s) and readiness (a first tick done).

    `last_tick` returns the wall time of the latest finished tick (None before the first);
    `interval` returns the current tick interval (both follow reloads).
    """

    def __init__(
        self,
        last_tick: Callable[[], float | None],
        interval: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._last_tick = last_tick
        self._interval = interval
        self._clock = clock
        self.started = clock()

    def __call__(self) -> Health:
        now = self._clock()
        last = self._last_tick()
        limit = max(3 * self._interval(), 30.0)
        alive = (last is None and now - self.started < limit) or (last is not None and now - last < limit)
        detail = "no tick yet" if last is None else f"last tick {now - last:.1f}s ago"
        return Health(alive, last is not None, detail)
