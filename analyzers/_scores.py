"""The latest per-series anomaly scores of a host, shared by the anomaly analyzer with its readers.

The anomaly analyzer scores every watched series in one batched step per tick and publishes the
result here, keyed by the ring store it read; the correlation analyzer (the host score and its
incident findings) reads it instead of scoring again.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from otel_sysops.store import RingStore

F64 = NDArray[np.float64]

# Series combined into the host score: the mean of the highest few, so one series that blips
# alone counts for a third and several series moving together count in full.
HOST_TOP = 3


def host_score(scores: F64, top: int = HOST_TOP) -> float:
    """Return the mean of the `top` highest scores (zeros fill in when there are fewer series)."""
    if scores.size == 0:
        return 0.0
    k = min(top, scores.size)
    best = np.partition(scores, scores.size - k)[scores.size - k :]
    return float(np.sum(best) / top)


@dataclass(slots=True)
class Scores:
    """One tick's per-series scores: metric and attributes of each series, value and score."""

    timestamp: float = float("nan")
    metrics: list[str] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)
    values: F64 = field(default_factory=lambda: np.zeros(0))
    scores: F64 = field(default_factory=lambda: np.zeros(0))


class ScoreBoard:
    """The latest `Scores` of one store (thread-safe: the exporter thread reads it too)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest = Scores()

    def publish(self, scores: Scores) -> None:
        with self._lock:
            self._latest = scores

    def latest(self) -> Scores:
        with self._lock:
            return self._latest


_BOARDS: weakref.WeakKeyDictionary[RingStore, ScoreBoard] = weakref.WeakKeyDictionary()
_BOARDS_LOCK = threading.Lock()


def board_for(store: RingStore) -> ScoreBoard:
    """Return the score board of `store` (created on first use)."""
    with _BOARDS_LOCK:
        board = _BOARDS.get(store)
        if board is None:
            board = _BOARDS[store] = ScoreBoard()
        return board
