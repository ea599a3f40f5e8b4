"""The local API (/api/v1/) and page (/): status, alerts and their history, silences, series, events.

The composition root calls `build_api(parts, settings)` once, mounts `api.handlers` on the HTTP
server, adds `api.tick_sink(pipeline.store)` to every pipeline it builds, and calls
`api.close(timeout)` at shutdown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.metrics.export import MetricsData

from otel_sysops.errors import ConfigError
from otel_sysops.http import Handler
from otel_sysops.settings import ApiSettings

from ._events import EventHub, StreamFull
from ._history import AlertHistory, HistoryQuery
from ._page import PageHandler
from ._parts import AlertsView, ApiParts, InventoryProvider, PipelineView
from ._routes import PREFIX, ApiRoutes
from ._views import StoreView, summary

__all__ = [
    "PREFIX",
    "AlertHistory",
    "AlertsView",
    "Api",
    "ApiParts",
    "EventHub",
    "HistoryQuery",
    "InventoryProvider",
    "PipelineView",
    "StreamFull",
    "build_api",
]

_log = logging.getLogger(__name__)

HISTORY_FILE = "alerts.db"


class TickEvents:
    """A pipeline sink that publishes each tick's summary as a `tick` event (only when someone listens)."""

    name = "api.events"

    def __init__(self, store: StoreView, hub: EventHub) -> None:
        self.store = store
        self.hub = hub

    def consume(self, data: MetricsData, timestamp: float) -> None:
        # The store sink ran first in this tick: the store holds this collection already.
        if self.hub.listening:
            self.hub.publish("tick", summary(self.store, timestamp))

    def failures(self) -> int:
        return 0

    def close(self, timeout: float) -> None:
        return None


class Api:
    """What `build_api` returns: the handlers to mount, the tick sink factory, and `close`."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        events: EventHub,
        history: AlertHistory | None,
        routes: ApiRoutes | None,
        detach: Callable[[], None],
    ) -> None:
        self.handlers = handlers
        self.events = events
        self.history = history
        self.routes = routes
        self._detach = detach

    def tick_sink(self, store: StoreView) -> TickEvents:
        """Return the sink to add to a pipeline (after its store sink) so streams get every tick."""
        return TickEvents(store, self.events)

    def reconfigure(self, settings: ApiSettings) -> None:
        """Apply reloaded settings: token, read access, page size, history bounds.

        `enabled`, `page`, `history_path` and the stream limits take effect at the next start.
        """
        if self.routes is not None:
            self.routes.settings = settings
            self.routes.token = _token(settings)
        if self.history is not None:
            self.history.max_age, self.history.max_rows = settings.history_max_age, settings.history_max_rows

    def close(self, timeout: float) -> None:
        """End the event streams, stop observing the alert manager, write the pending history."""
        self.events.close()
        self._detach()
        if self.history is not None:
            self.history.close(timeout)


def build_api(parts: ApiParts, settings: ApiSettings, clock: Callable[[], float] = time.time) -> Api:
    """Build the API from the agent's parts: handlers for "/api/v1/" and "/" (none when api.enabled is off).

    Opens (or creates) the alert history and registers it and the event hub as observers of the
    alert manager. Raise ConfigError (one line) when the token file cannot be read and
    SysopsError when the history database cannot be opened.
    """
    events = EventHub(settings.max_stream_clients, settings.stream_queue)
    if not settings.enabled:
        return Api({}, events, None, None, lambda: None)
    token = _token(settings)
    history: AlertHistory | None = None
    manager = parts.alerts
    if manager is not None:
        history = AlertHistory(
            _history_path(parts, settings),
            settings.history_max_age,
            settings.history_max_rows,
            settings.history_queue,
            clock,
        )
        manager.add_observer(history)
        manager.add_observer(events)
    routes = ApiRoutes(parts, settings, token, history, events, clock)
    handlers: dict[str, Handler] = {PREFIX: routes}
    if settings.page:
        handlers["/"] = PageHandler()

    def detach() -> None:
        if manager is not None:
            if history is not None:
                manager.remove_observer(history)
            manager.remove_observer(events)

    return Api(handlers, events, history, routes, detach)


def _history_path(parts: ApiParts, settings: ApiSettings) -> Path | None:
    if settings.history_path is not None:
        return settings.history_path
    return None if parts.state_dir is None else parts.state_dir / HISTORY_FILE


def _token(settings: ApiSettings) -> str | None:
    if settings.token is not None:
        return settings.token.get_secret_value() or None
    if settings.token_file is None:
        return None
    try:
        text = settings.token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"api.token_file: cannot read {settings.token_file} ({exc.strerror})") from exc
    if not text:
        raise ConfigError(f"api.token_file: {settings.token_file} is empty")
    return text
