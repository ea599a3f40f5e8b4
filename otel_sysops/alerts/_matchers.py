"""Label matchers (routing and silences) and the silence book."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from .channel import Alert

# Matcher keys that name fields of the alert rather than attributes or labels.
_FIELDS = ("rule", "metric", "host", "fingerprint", "state")


def alert_fields(alert: Alert) -> dict[str, str]:
    """Return what matchers see: attributes, then labels, then the alert's own fields (which win)."""
    out = {**alert.attributes, **alert.labels}
    for name in _FIELDS:
        out[name] = str(getattr(alert, name))
    out["severity"] = alert.severity.name.lower()
    return out


def matches(matchers: Mapping[str, str], alert: Alert) -> bool:
    """Return whether every matcher holds (value equal, or a shell-style glob: `disk*`, `sd?`)."""
    if not matchers:
        return True
    fields = alert_fields(alert)
    for key, pattern in matchers.items():
        value = fields.get(key)
        if value is None or not fnmatchcase(value, pattern):
            return False
    return True


# Silences in force at once (run-time ones: CLI, NATS); one more is refused with the reason.
MAX_SILENCES = 1000


@dataclass(frozen=True, slots=True)
class Silence:
    """Alerts matching every matcher are not notified until `ends_at` (seconds since the epoch)."""

    id: str
    matchers: Mapping[str, str]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    # "settings" silences are replaced on reload; "runtime" ones (CLI, NATS) are kept.
    origin: str = field(default="runtime", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what `SilenceControl.silences()` lists)."""
        return {
            "id": self.id,
            "matchers": dict(self.matchers),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "comment": self.comment,
            "created_by": self.created_by,
        }


class SilenceBook:
    """The silences in force; thread-safe, expired ones are dropped as they are seen."""

    def __init__(self, max_silences: int = MAX_SILENCES) -> None:
        self._lock = threading.Lock()
        self._silences: dict[str, Silence] = {}
        self.max_silences = max_silences
        # Silences refused because the book was full (each was answered with the reason).
        self.refused = 0

    def add(
        self,
        matchers: Mapping[str, str],
        starts_at: float,
        ends_at: float,
        comment: str = "",
        created_by: str = "",
        origin: str = "runtime",
    ) -> str:
        """Add a silence and return its id."""
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        silence = Silence(uuid.uuid4().hex, dict(matchers), starts_at, ends_at, comment, created_by, origin)
        with self._lock:
            if len(self._silences) >= self.max_silences:
                self._prune(starts_at)
            if len(self._silences) >= self.max_silences and origin == "runtime":
                self.refused += 1
                raise ValueError(f"too many silences in force ({self.max_silences}): remove one first")
            self._silences[silence.id] = silence
        return silence.id

    def remove(self, silence_id: str) -> bool:
        """Remove a silence; return whether it existed."""
        with self._lock:
            return self._silences.pop(silence_id, None) is not None

    def replace_origin(
        self, origin: str, silences: list[tuple[Mapping[str, str], float, float, str]]
    ) -> None:
        """Drop every silence of `origin` and add these (matchers, starts_at, ends_at, comment)."""
        with self._lock:
            for sid in [s.id for s in self._silences.values() if s.origin == origin]:
                del self._silences[sid]
        for matchers, starts, ends, comment in silences:
            self.add(matchers, starts, ends, comment, origin, origin)

    def active(self, now: float) -> list[Silence]:
        """Return the silences in force at `now`, forgetting expired ones."""
        with self._lock:
            self._prune(now)
            return [s for s in self._silences.values() if s.starts_at <= now]

    def _prune(self, now: float) -> None:
        for sid in [s.id for s in self._silences.values() if s.ends_at <= now]:
            del self._silences[sid]

    def silencing(self, alert: Alert, now: float) -> Silence | None:
        """Return the first silence that covers `alert` at `now`."""
        return next((s for s in self.active(now) if matches(s.matchers, alert)), None)
