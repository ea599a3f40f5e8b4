"""The long-lived services `otel-sysops run` starts beside the tick loop, each handed only what it needs."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread

from otel_sysops.alerts import (
    TELEMETRY_SCOPE,
    AlertManager,
    reconfigure,
    register_alert_telemetry,
)
from otel_sysops.findings import AlertSink
from otel_sysops.http import Handler
from otel_sysops.logs import METRICS_SCOPE, LogService, build_log_service, register_log_metrics
from otel_sysops.resource import host_name
from otel_sysops.settings import Settings

if TYPE_CHECKING:
    from otel_sysops.api import Api
    from otel_sysops.bridge import AgentView, NatsBridge
    from otel_sysops.pipeline import Pipeline

_log = logging.getLogger("otel_sysops.app")

PipelineHook = Callable[["Pipeline"], None]


class Service(Protocol):
    """A long-lived part of the agent (alert delivery, NATS, log readers) run in the task group."""

    name: str

    async def run(self) -> None:
        """Run until cancelled."""

    async def aclose(self, timeout: float) -> None:
        """Flush what is pending within `timeout` seconds."""


@dataclass(frozen=True, slots=True)
class ServiceContext:
    """What a service factory may use: the settings at start, the alert sink, two registration calls."""

    settings: Settings
    alerts: AlertSink
    on_pipeline: Callable[[PipelineHook], None]
    """Call a hook with the current pipeline now and with every pipeline a reload builds (meters)."""
    mount: Callable[[str, Handler], None]
    """Serve a handler on the agent's HTTP server (kept across reloads)."""
    view: AgentView
    """The read-only view heartbeats and the control plane report from."""


ServiceFactory = Callable[[ServiceContext], "Service | None"]


def alert_service(ctx: ServiceContext) -> AlertManager | None:
    """The alert manager's channels as a service, re-configured on every reload; None without the manager."""
    manager = ctx.alerts
    if not isinstance(manager, AlertManager):
        return None
    current = [ctx.settings.alerts]

    def on_pipeline(pipeline: Pipeline) -> None:
        # Called now, and on the loop thread by every reload with the new pipeline.
        register_alert_telemetry(pipeline.meter(TELEMETRY_SCOPE), manager)
        if pipeline.settings.alerts != current[0]:
            current[0] = pipeline.settings.alerts
            manager.start_soon(reconfigure, manager, pipeline.settings.alerts)

    ctx.on_pipeline(on_pipeline)
    return manager


def log_service(ctx: ServiceContext) -> LogService | None:
    """The log readers, their counters registered on every pipeline; None when off."""
    service = build_log_service(ctx.settings, ctx.alerts)
    if service is not None:
        stats = service.analyzer.stats
        ctx.on_pipeline(lambda pipeline: register_log_metrics(pipeline.meter(METRICS_SCOPE), stats))
    return service


def nats_service(ctx: ServiceContext) -> NatsBridge | None:
    """The NATS bridge when NATS is configured, else None.

    The bridge's alert channel is handed to the alert sink when it takes channels
    (`add_channel`, the alert manager); the plain log sink does not, and alerts then stay local.
    """
    settings = ctx.settings
    if not settings.nats.active:
        return None
    # Imported here: an agent without NATS never loads the bridge.
    from otel_sysops.bridge import NatsBridge
    from otel_sysops.inventory import Roots, collect_inventory

    host = host_name(settings)
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    bridge = NatsBridge(
        settings.nats,
        host,
        ctx.view,
        inventory=functools.partial(collect_inventory, roots, host, settings=settings),
    )
    ctx.on_pipeline(lambda pipeline: bridge.register_metrics(pipeline.meter("otel_sysops.bridge")))
    add_channel = getattr(ctx.alerts, "add_channel", None)
    if callable(add_channel):
        add_channel(bridge.channel)
    else:
        _log.info("the alert sink takes no channels: alerts are not published on %s", bridge.subjects.alerts)
    return bridge


class ApiService:
    """The local API and page (mounted on the agent's HTTP server); `aclose` ends streams and
    writes the pending alert history."""

    name = "api"

    def __init__(self, api: Api) -> None:
        self.api = api

    async def run(self) -> None:
        """Nothing to run: the HTTP server's threads serve the handlers."""

    async def aclose(self, timeout: float) -> None:
        await anyio.to_thread.run_sync(self.api.close, timeout)


def api_service(ctx: ServiceContext) -> ApiService | None:
    """The local API at /api/v1/ and the page at /, fed by every pipeline; None when api.enabled is off.

    The alert history lives in the state directory: the directory of `store.sqlite_path`
    (or `api.history_path`).
    """
    settings = ctx.settings
    if not settings.api.enabled:
        return None
    from otel_sysops.api import ApiParts, build_api
    from otel_sysops.inventory import Roots, collect_inventory

    host = host_name(settings)
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    current: list[Pipeline] = []
    sqlite = settings.store.sqlite_path
    parts = ApiParts(
        pipeline=lambda: current[-1],
        alerts=ctx.alerts if isinstance(ctx.alerts, AlertManager) else None,
        inventory=functools.partial(collect_inventory, roots, host, settings=settings),
        state_dir=sqlite.parent if sqlite is not None else None,
        started=ctx.view.started,
        host=host,
    )
    api = build_api(parts, settings.api)

    def on_pipeline(pipeline: Pipeline) -> None:
        # Called now and with every pipeline a reload builds: streams follow the new store.
        if current:
            api.reconfigure(pipeline.settings.api)
        current[:] = [pipeline]
        pipeline.add_sink(api.tick_sink(pipeline.store))

    ctx.on_pipeline(on_pipeline)
    for prefix, handler in api.handlers.items():
        ctx.mount(prefix, handler)
    return ApiService(api)


def default_service_factories() -> list[ServiceFactory]:
    """Return the factories of every built-in service; each returns None when its settings turn it off."""
    # The alert manager first: the log reader submits to it, the NATS bridge registers on it.
    return [alert_service, log_service, nats_service, api_service]
