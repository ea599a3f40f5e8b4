"""The running agent: ticks the pipeline on a timer, owns the HTTP server, handles signals and reloads."""

from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from otel_sysops._logging import setup_logging
from otel_sysops.alerts import build_alert_sink
from otel_sysops.breaker import AgentHealth, pipeline_health
from otel_sysops.errors import ConfigError, SysopsError
from otel_sysops.findings import AlertSink
from otel_sysops.health import Health, TickHealth
from otel_sysops.http import Handler, HttpServer
from otel_sysops.settings import Settings, check_roots, load_settings
from otel_sysops.sinks import PrometheusSink, metrics_handler

from ._build import build_pipeline
from ._http import health_handler
from ._services import PipelineHook, Service, ServiceContext, ServiceFactory

_log = logging.getLogger("otel_sysops.agent")

SHUTDOWN_TIMEOUT = 10.0


class Agent:
    """Own the pipeline, the HTTP server and the services; run them in one task group on one event loop."""

    def __init__(
        self,
        settings: Settings,
        config: Path | None = None,
        overrides: dict[str, Any] | None = None,
        service_factories: list[ServiceFactory] | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.overrides = overrides or {}
        self.ticks = 0
        # The alert sink outlives reloads, so alert state survives them.
        # The alert manager (or the log sink when alerts are disabled); its channels run as a service.
        self.alerts: AlertSink = build_alert_sink(settings)
        self.pipeline = build_pipeline(settings, self.alerts)
        self._health = TickHealth(lambda: self.pipeline.last_tick, lambda: self.settings.interval)
        self.started = self._health.started
        self.service_factories = service_factories or []
        self.services: list[Service] = []
        self.http: HttpServer | None = None
        self._mounts: dict[str, Handler] = {}
        self._pipeline_hooks: list[PipelineHook] = []
        self._reload_requested = False
        self._reloading = False
        self._stopping = False
        self._ticker_scope: anyio.CancelScope | None = None
        self._ticker_done: anyio.Event | None = None

    @property
    def bound(self) -> tuple[str, int] | None:
        """Return the HTTP server's bound address (None before run() or when it is not serving)."""
        return self.http.address if self.http is not None else None

    def add_pipeline_hook(self, hook: PipelineHook) -> None:
        """Call `hook` with the current pipeline now and with every pipeline a reload builds.

        Services use it to register their own instruments (e.g. `sysops.log.matches`) on
        `pipeline.meter(scope)`, which a reload replaces.
        """
        self._pipeline_hooks.append(hook)
        hook(self.pipeline)

    def mount(self, prefix: str, handler: Handler) -> None:
        """Serve `handler` at `prefix` on the agent's HTTP server (e.g. the local API at "/api/v1/").

        Allowed before run() and while running; kept across reloads, also when a reload moves
        the listener to another address.
        """
        self._mounts[prefix] = handler
        if self.http is not None:
            self.http.mount(prefix, handler)

    def context(self) -> ServiceContext:
        """Return what service factories are handed (never the agent itself)."""
        return ServiceContext(self.settings, self.alerts, self.add_pipeline_hook, self.mount, self)

    def request_reload(self) -> None:
        """Reload the settings as SIGHUP does (the NATS control plane's `.reload`); call on the loop.

        Requests made while a reload runs are coalesced into one more reload, which reads the
        configuration as it is then (the latest file wins).
        """
        if self._stopping:
            return
        self._reload_requested = True
        if self._ticker_scope is not None and not self._reloading:
            self._ticker_scope.cancel()

    # -- health ------------------------------------------------------------------------------

    def health(self) -> Health:
        """Return liveness (a tick within three intervals) and readiness (a first tick done and
        the agent not critical: some collector collecting); the detail names what is failing."""
        ticks = self._health()
        judged = self.agent_health()
        return Health(
            ticks.alive, ticks.ready and judged.state != "critical", f"{ticks.detail}; {judged.detail}"
        )

    def agent_health(self) -> AgentHealth:
        """Return healthy, degraded (some collectors or channels failing) or critical (none collecting)."""
        return pipeline_health(self.pipeline, self.alerts)

    def _prometheus(self) -> PrometheusSink | None:
        return next((s for s in self.pipeline.sinks if isinstance(s, PrometheusSink)), None)

    # -- HTTP --------------------------------------------------------------------------------

    def _routes(self, server: HttpServer) -> None:
        server.mount("/healthz", health_handler(self.health, ready=False))
        server.mount("/readyz", health_handler(self.health, ready=True))
        prom = self._prometheus()
        if prom is not None:
            server.mount("/metrics", metrics_handler(prom))
        else:
            server.unmount("/metrics")
        for prefix, handler in self._mounts.items():
            server.mount(prefix, handler)

    def _start_http(self) -> None:
        """Start the one listener (health always; /metrics when the Prometheus sink is on)."""
        cfg = self.settings.prometheus
        server = HttpServer(cfg.host, cfg.port)
        self._routes(server)
        self.http = server
        server.start()

    def _rebind_http(self) -> None:
        """After a reload: remount on the running listener, or move it when the address changed.

        The new address is bound before the old listener closes; when it cannot be bound the
        old listener keeps serving and the error is logged.
        """
        cfg = self.settings.prometheus
        old = self.http
        if old is None:
            return
        if (old.host, old.port) == (cfg.host, cfg.port):
            self._routes(old)
            return
        server = HttpServer(cfg.host, cfg.port)
        self._routes(server)
        try:
            server.start()
        except SysopsError as exc:
            _log.error("reload: %s; still serving on %s:%d", exc, old.host, old.port)
            self._routes(old)
            return
        self.http = server
        old.close(SHUTDOWN_TIMEOUT)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit code."""
        self._start_http()
        try:
            ctx = self.context()
            self.services = [s for s in (f(ctx) for f in self.service_factories) if s is not None]
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._signals, tg.cancel_scope)
                for service in self.services:
                    tg.start_soon(service.run)
                await self._tick_forever()
        finally:
            if self.http is not None:
                self.http.close(1.0)
        return 0

    async def _tick_forever(self) -> None:
        self._ticker_done = anyio.Event()
        try:
            while True:
                with anyio.CancelScope() as scope:
                    self._ticker_scope = scope
                    if not self._reload_requested:
                        await self._ticker()
                if self._stopping or not self._reload_requested:
                    return
                # Every request made up to here is served by this one reload (coalesced).
                self._reload_requested = False
                self._reloading = True
                try:
                    await self._reload()
                finally:
                    self._reloading = False
        finally:
            self._ticker_scope = None
            self._ticker_done.set()

    async def _ticker(self) -> None:
        interval = self.settings.interval
        deadline = time.monotonic()
        while True:
            # The tick does blocking /proc reads: run it on a worker thread, off the loop.
            # A cancel (stop, reload) waits for the tick in flight to finish first.
            await anyio.to_thread.run_sync(self.pipeline.tick)
            self.ticks += 1
            now = time.monotonic()
            deadline += interval
            if deadline < now:  # a tick overran: skip the missed slots, keep the phase
                deadline += math.ceil((now - deadline) / interval) * interval
            await anyio.sleep(deadline - now)

    async def _signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    _log.info("SIGHUP: reloading the configuration")
                    self.request_reload()
                    continue
                _log.info("%s: stopping", signal.Signals(signum).name)
                await self._shutdown()
                scope.cancel()
                return

    async def _shutdown(self) -> None:
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        # Stop ticking and wait for the tick (or reload) in flight: the pipeline closes after it.
        self._stopping = True
        if self._ticker_scope is not None:
            self._ticker_scope.cancel()
        if self._ticker_done is not None:
            with anyio.move_on_after(SHUTDOWN_TIMEOUT):
                await self._ticker_done.wait()
        for service in self.services:
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                await service.aclose(max(0.0, deadline - time.monotonic()))
        remaining = max(0.1, deadline - time.monotonic())
        # Never flush the SDK on the loop thread: it can stall for the whole export timeout.
        await anyio.to_thread.run_sync(self.pipeline.close, remaining)
        if self.http is not None:
            await anyio.to_thread.run_sync(self.http.close, max(0.1, deadline - time.monotonic()))

    async def _reload(self) -> None:
        try:
            settings = load_settings(self.config, self.overrides)
            check_roots(settings, self.config)
            pipeline = await anyio.to_thread.run_sync(build_pipeline, settings, self.alerts, self.pipeline)
        except (ConfigError, SysopsError) as exc:
            _log.error("reload failed, keeping the running configuration: %s", exc)
            return
        old = self.pipeline
        await anyio.to_thread.run_sync(old.close, SHUTDOWN_TIMEOUT)
        for hook in self._pipeline_hooks:
            hook(pipeline)
        self.settings, self.pipeline = settings, pipeline
        # Same listener, new routes (/metrics follows the new Prometheus sink, or goes when it is off).
        self._rebind_http()
        setup_logging(settings.log.level, settings.log.format)
        _log.info("configuration reloaded")
