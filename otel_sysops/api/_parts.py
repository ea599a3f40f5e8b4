"""What the API reads, as small Protocols: the composition root hands these over, never the agent."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from otel_sysops.alerts import Alert, AlertObserver

from ._views import StoreView


class SinkView(Protocol):
    """A sink as the status route reports it."""

    @property
    def name(self) -> str: ...

    def failures(self) -> int: ...


class ErrorsView(Protocol):
    """Per-plugin error counts by kind."""

    def snapshot(self) -> dict[tuple[str, str], int]: ...


class TickView(Protocol):
    """The last tick's outcome."""

    @property
    def duration(self) -> float: ...

    @property
    def failed(self) -> Mapping[str, str]: ...


class PipelineView(Protocol):
    """The running pipeline (a reload replaces it: the API asks for the current one each time)."""

    @property
    def collectors(self) -> Mapping[str, object]: ...

    @property
    def analyzers(self) -> Mapping[str, object]: ...

    @property
    def sinks(self) -> Sequence[SinkView]: ...

    @property
    def errors(self) -> ErrorsView: ...

    @property
    def last_tick(self) -> float | None: ...

    @property
    def last_result(self) -> TickView | None: ...

    @property
    def store(self) -> StoreView: ...


class AlertsView(Protocol):
    """The alert manager's active alerts, silences and observers (`otel_sysops.alerts.AlertManager`)."""

    def active_alerts(self) -> list[Alert]: ...

    def silences(self) -> list[dict[str, Any]]: ...

    def add_silence(
        self, matchers: Mapping[str, str], duration: float, comment: str = "", created_by: str = ""
    ) -> str: ...

    def remove_silence(self, silence_id: str) -> bool: ...

    def add_observer(self, observer: AlertObserver) -> None: ...

    def remove_observer(self, observer: AlertObserver) -> None: ...

    def counts_snapshot(self) -> dict[str, int]: ...


InventoryProvider = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ApiParts:
    """Everything `build_api` needs from the running agent.

    - `pipeline`: returns the current pipeline (`lambda: agent.pipeline`); status, series,
      summary and anomalies read it (its `store`), so a reload is picked up.
    - `alerts`: the `AlertManager` (None when alerting is off: the alert routes answer 503 and
      no history is kept).
    - `inventory`: returns the host inventory (`collect_inventory(roots, host)` bound); called
      at most once per `inventory_ttl` seconds, on the first request, never at start.
    - `state_dir`: where `alerts.db` lives unless `api.history_path` says otherwise (None and no
      `history_path`: the history is kept in memory only).
    - `started`: when the agent started (seconds since the epoch), for the uptime.
    - `host`: the host name alerts carry.
    """

    pipeline: Callable[[], PipelineView]
    alerts: AlertsView | None
    inventory: InventoryProvider | None
    state_dir: Path | None
    started: float
    host: str = ""
    inventory_ttl: float = 300.0
