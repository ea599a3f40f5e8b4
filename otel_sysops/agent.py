"""The running agent: ticks the pipeline on a timer, serves Prometheus, handles signals and reloads."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anyio
import anyio.to_thread

from ._logging import setup_logging
from .alerts import AlertSink
from .alerts._build import build_alert_sink
from .errors import ConfigError, SysopsError
from .pipeline import Pipeline
from .settings import Settings, load_settings
from .sinks import PrometheusSink
from .sinks._otlp import OtlpSink, make_exporter, otlp_enabled, otlp_protocol
from .sinks._prometheus import Health

_log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT = 10.0


class Service(Protocol):
    """A long-lived part of the agent (alert delivery, NATS, log readers) run in the task group."""

    name: str

    async def run(self) -> None:
        """Run until cancelled."""

    async def aclose(self, timeout: float) -> None:
        """Flush what is pending within `timeout` seconds."""


ServiceFactory = Callable[["Agent"], Service | None]


def build_pipeline(
    settings: Settings, alerts: AlertSink | None = None, previous: Pipeline | None = None
) -> Pipeline:
    """Assemble the pipeline with the sinks the settings ask for (the Prometheus listener not started).

    With `previous` (a reload), its ring store and rollup database carry over when their shape is
    unchanged, so the analyzers keep their history.
    """
    pipeline = Pipeline(settings, alert_sink=alerts, store=previous.store if previous else None)
    if previous is not None and pipeline.store is previous.store:
        pipeline.rollup_db, previous.rollup_db = previous.rollup_db, None
    if otlp_enabled(settings.otlp):
        exporter = make_exporter(otlp_protocol(settings.otlp))
        pipeline.add_sink(
            OtlpSink(
                exporter,
                settings.otlp.queue_size,
                settings.otlp.max_attempts,
                max_points=settings.otlp.max_points,
            )
        )
    if settings.prometheus.enabled:
        pipeline.add_sink(PrometheusSink())
    return pipeline


class Agent:
    """Own the pipeline and the services; run them in one task group on one event loop."""

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
        self.started = time.time()
        self.ticks = 0
        # The alert sink outlives reloads, so alert state survives them.
        # The alert manager (or the log sink when alerts are disabled); its channels run as a service.
        self.alerts: AlertSink = build_alert_sink(settings)
        self.pipeline = build_pipeline(settings, self.alerts)
        self.service_factories = service_factories or []
        self.services: list[Service] = []
        self.bound: tuple[str, int] | None = None
        self._pipeline_hooks: list[Callable[[Pipeline], None]] = []
        self._reload_requested = False

    def add_pipeline_hook(self, hook: Callable[[Pipeline], None]) -> None:
        """Call `hook` with the current pipeline now and with every pipeline a reload builds.

        Services use it to register their own instruments (e.g. `sysops.log.matches`) on
        `pipeline.meter(scope)`, which a reload replaces.
        """
        self._pipeline_hooks.append(hook)
        hook(self.pipeline)

    def request_reload(self) -> None:
        """Reload the settings as SIGHUP does (the NATS control plane's `.reload`); call on the loop."""
        self._reload_requested = True
        scope: anyio.CancelScope | None = getattr(self, "_ticker_scope", None)
        if scope is not None:
            scope.cancel()

    # -- health ------------------------------------------------------------------------------

    def health(self) -> Health:
        """Return liveness (a tick within three intervals) and readiness (a first tick done)."""
        last = self.pipeline.last_tick
        limit = max(3 * self.settings.interval, 30.0)
        alive = (last is None and time.time() - self.started < limit) or (
            last is not None and time.time() - last < limit
        )
        detail = "no tick yet" if last is None else f"last tick {time.time() - last:.1f}s ago"
        return Health(alive, last is not None, detail)

    def _prometheus(self) -> PrometheusSink | None:
        return next((s for s in self.pipeline.sinks if isinstance(s, PrometheusSink)), None)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM or SIGINT; return the exit code."""
        self._start_listener()
        self.services = [s for s in (f(self) for f in self.service_factories) if s is not None]
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._signals, tg.cancel_scope)
            for service in self.services:
                tg.start_soon(service.run)
            await self._tick_forever()
        return 0

    def _start_listener(self) -> None:
        prom = self._prometheus()
        if prom is not None:
            prom.health = self.health
            self.bound = prom.serve(self.settings.prometheus.host, self.settings.prometheus.port)

    async def _tick_forever(self) -> None:
        while True:
            with anyio.CancelScope() as scope:
                self._ticker_scope = scope
                await self._ticker()
            if not self._reload_requested:
                return
            self._reload_requested = False
            await self._reload()

    async def _ticker(self) -> None:
        interval = self.settings.interval
        deadline = time.monotonic()
        while True:
            # The tick does blocking /proc reads: run it on a worker thread, off the loop.
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
                    self._reload_requested = True
                    self._ticker_scope.cancel()
                    continue
                _log.info("%s: stopping", signal.Signals(signum).name)
                await self._shutdown()
                scope.cancel()
                return

    async def _shutdown(self) -> None:
        self._ticker_scope.cancel()
        deadline = time.monotonic() + SHUTDOWN_TIMEOUT
        for service in self.services:
            with anyio.move_on_after(max(0.0, deadline - time.monotonic())):
                await service.aclose(max(0.0, deadline - time.monotonic()))
        remaining = max(0.1, deadline - time.monotonic())
        # Never flush the SDK on the loop thread: it can stall for the whole export timeout.
        await anyio.to_thread.run_sync(self.pipeline.close, remaining)

    async def _reload(self) -> None:
        try:
            settings = load_settings(self.config, self.overrides)
            pipeline = await anyio.to_thread.run_sync(build_pipeline, settings, self.alerts, self.pipeline)
        except (ConfigError, SysopsError) as exc:
            _log.error("reload failed, keeping the running configuration: %s", exc)
            return
        old = self.pipeline
        await anyio.to_thread.run_sync(old.close, SHUTDOWN_TIMEOUT)
        for hook in self._pipeline_hooks:
            hook(pipeline)
        self.settings, self.pipeline = settings, pipeline
        setup_logging(settings.log.level, settings.log.format)
        # The old listener closed with the old pipeline; serve the new one's (none if disabled).
        self._start_listener()
        _log.info("configuration reloaded")
