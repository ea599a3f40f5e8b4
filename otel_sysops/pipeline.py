"""One collection per tick, fanned out: sample every collector once, collect the SDK once, hand
the same `MetricsData` to every sink (ring store, OTLP, Prometheus), then run the analyzers."""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Metric, MetricsData, ResourceMetrics, ScopeMetrics
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import __version__
from .breaker import CollectorBreakers, register_health_telemetry
from .catalog import InstrumentCatalog, RecordingMeter
from .churn import ChurningMeter
from .findings import AlertSink, LogAlertSink
from .plugin import (
    ANALYZERS_GROUP,
    INSTRUMENTATION_GROUP,
    Analyzer,
    AnalyzerContext,
    Collector,
    CollectorContext,
    ErrorCounter,
    TickFiles,
    load_plugins,
)
from .reader import TickReader
from .resource import build_resource
from .selftelemetry import SelfState, register_self_telemetry
from .selfwatch import SelfWatch
from .settings import Settings
from .sinks import Sink, StoreSink
from .store import RingStore, RollupDatabase

_log = logging.getLogger(__name__)

SELF_SCOPE = "otel_sysops"


@dataclass
class TickResult:
    """What one tick produced: the collection, its time, and how long it took."""

    data: MetricsData
    timestamp: float
    duration: float
    failed: dict[str, str] = field(default_factory=dict)


class Pipeline:
    """Own the MeterProvider (with exactly one reader), the plugins, the store and the sinks."""

    def __init__(
        self,
        settings: Settings,
        *,
        resource: Resource | None = None,
        alert_sink: AlertSink | None = None,
        load: bool = True,
        store: RingStore | None = None,
    ) -> None:
        self.settings = settings
        self.resource = resource or build_resource(settings)
        self.catalog = InstrumentCatalog()
        self.errors = ErrorCounter()
        self.files = TickFiles()
        self.state = SelfState()
        self.alerts: AlertSink = alert_sink or LogAlertSink()
        # A reload hands the running store over when its shape is unchanged, so history survives.
        self.store = store if store is not None and store_fits(store, settings) else new_store(settings)
        self.rollup_db: RollupDatabase | None = None
        if settings.store.sqlite_path is not None and self.store is not store:
            self.rollup_db = RollupDatabase(settings.store.sqlite_path, settings.store.rollup_window)
            self.rollup_db.attach(self.store)
        self.reader = TickReader()
        self.provider = MeterProvider(resource=self.resource, metric_readers=[self.reader])
        self.sinks: list[Sink] = [StoreSink(self.store)]
        self.collectors: dict[str, Collector[object]] = {}
        self.analyzers: dict[str, Analyzer] = {}
        # Collectors left out at start (this host lacks their source) -> why.
        self.skipped: dict[str, str] = {}
        self._churn: list[ChurningMeter] = []
        self._stable: dict[str, ChurningMeter] = {}
        self._lock = threading.Lock()
        self._logged_failures: set[tuple[str, str]] = set()
        self.last_tick: float | None = None
        self.last_result: TickResult | None = None
        # Plugins run every n-th tick (1 unless the self-watch slowed them down).
        self._cadence: dict[str, int] = {}
        self._count = 0
        self.watch = SelfWatch(settings.budget, self.alerts)
        self.breakers = CollectorBreakers(settings.health.failures_to_open, settings.health.retry_after)
        register_self_telemetry(
            self.meter(SELF_SCOPE),
            self.state,
            self.errors,
            self.store,
            lambda: list(self.sinks),
            settings.procfs,
        )
        register_health_telemetry(self.meter(SELF_SCOPE), self)
        if load:
            self.load_collectors()
            self.load_analyzers()

    # -- assembly ----------------------------------------------------------------------------

    def meter(self, scope: str) -> RecordingMeter:
        """Return a meter of the pipeline's provider that records its instruments in the catalog.

        Its observable instruments bypass SDK storage: their callbacks run once per tick in
        `_with_churn` and the points go straight into the collection (a third of a tick's CPU was
        the SDK's per-measurement work); synchronous instruments stay with the SDK."""
        observables = self._stable.get(scope)
        if observables is None:
            observables = self._stable[scope] = ChurningMeter(scope, stable=True)
            self._churn.append(observables)
        return RecordingMeter(self.provider.get_meter(scope, __version__), scope, self.catalog, observables)

    def churning_meter(self, scope: str) -> ChurningMeter:
        """Return a meter for churning series, collected once per tick into the same MetricsData."""
        churn = ChurningMeter(scope, self.catalog)
        self._churn.append(churn)
        return churn

    def add_collector(self, name: str, collector: Collector[Any]) -> None:
        """Register a collector's instruments and sample it every tick."""
        scope = f"otel_sysops.instrumentation.{name}"
        collector.register(self.meter(scope), self.churning_meter(scope))
        self.collectors[name] = collector

    def add_analyzer(self, name: str, analyzer: Analyzer) -> None:
        """Register an analyzer's instruments and run it after every tick."""
        scope = f"otel_sysops.analyzers.{name}"
        analyzer.register(self.meter(scope), self.churning_meter(scope))
        self.analyzers[name] = analyzer

    def add_sink(self, sink: Sink) -> None:
        """Hand every later collection to `sink` as well."""
        self.sinks.append(sink)

    def load_collectors(self) -> None:
        """Instantiate the collectors of the `otel_sysops.instrumentation` entry-point group."""
        cfg = self.settings.instrumentation

        def build(name: str, cls: type[Collector[object]]) -> Collector[object]:
            return cls(CollectorContext(name, self.settings, self.files, self.errors))

        chosen = load_plugins(INSTRUMENTATION_GROUP, build, cfg.enabled, cfg.disabled, skipped=self.skipped)
        for name, collector in chosen.items():
            self.add_collector(name, collector)

    def load_analyzers(self) -> None:
        """Instantiate the analyzers of the `otel_sysops.analyzers` entry-point group."""
        cfg = self.settings.analyzers
        if not cfg.enabled:
            return

        def build(name: str, cls: type[Analyzer]) -> Analyzer:
            return cls(AnalyzerContext(name, self.settings, self.store))

        for name, analyzer in load_plugins(ANALYZERS_GROUP, build, None, cfg.disabled).items():
            self.add_analyzer(name, analyzer)

    # -- the tick ----------------------------------------------------------------------------

    def sample(self) -> dict[str, str]:
        """Sample every collector once; return the ones that failed, with the reason."""
        self.files.clear()
        failed: dict[str, str] = {}
        now = time.monotonic()
        for name, collector in self.collectors.items():
            if self._count % self._cadence.get(name, 1):
                continue
            if (why := self.breakers.allow(name)) is not None:  # circuit open: not sampled this tick
                collector.snapshot, failed[name] = None, why
                continue
            start = time.perf_counter()
            try:
                collector.collect(now)
            except Exception as exc:  # noqa: BLE001 - one collector's failure must not stop the tick
                failed[name] = f"{type(exc).__name__}: {exc}"
                self.errors.add(name, type(exc).__name__)
                self._log_once(name, type(exc).__name__, "collector %s failed: %s", name, failed[name])
            self.breakers.record(name, failed.get(name))
            with self.state.lock:
                self.state.durations[name] = time.perf_counter() - start
        return failed

    def tick(self, timestamp: float | None = None) -> TickResult:
        """Run one tick: sample, collect once, fan out to every sink, analyze. Never raises for a plugin."""
        with self._lock:
            start = time.perf_counter()
            wall = time.time() if timestamp is None else timestamp
            failed = self.sample()
            data = self.reader.collect_once() or MetricsData(resource_metrics=[])
            data = self._with_churn(data, int(wall * 1e9))
            for sink in self.sinks:
                try:
                    sink.consume(data, wall)
                except Exception as exc:  # noqa: BLE001 - a sink's bug must not stop the others
                    self._log_once(sink.name, type(exc).__name__, "sink %s failed: %s", sink.name, exc)
            self._analyze(wall)
            self._count += 1
            try:
                self.watch.check(self, self.settings.procfs)
            except Exception as exc:  # noqa: BLE001 - the watch must never stop a tick
                self._log_once("selfwatch", type(exc).__name__, "self-watch failed: %s", exc)
            duration = time.perf_counter() - start
            with self.state.lock:
                self.state.tick_duration = duration
                self.state.ticks += 1
            self.last_tick = wall
            self.last_result = TickResult(data, wall, duration, failed)
            _freeze_startup_objects()
            return self.last_result

    def _analyze(self, wall: float) -> None:
        for name, analyzer in self.analyzers.items():
            if self._count % self._cadence.get(name, 1):
                continue
            try:
                findings = list(analyzer.analyze(wall))
            except Exception as exc:  # noqa: BLE001 - isolate analyzer failures
                self.errors.add(name, type(exc).__name__)
                self._log_once(name, type(exc).__name__, "analyzer %s failed: %s", name, exc)
                continue
            for finding in findings:
                self.alerts.submit(finding)

    def _with_churn(self, data: MetricsData, time_ns: int) -> MetricsData:
        extra: dict[str, list[Metric]] = {}
        for churn in self._churn:
            try:
                metrics = churn.collect(time_ns)
            except Exception as exc:  # noqa: BLE001 - a churning callback failing is one plugin's failure
                self.errors.add(churn.scope, type(exc).__name__)
                self._log_once(
                    churn.scope, type(exc).__name__, "callbacks of %s failed: %s", churn.scope, exc
                )
                continue
            if metrics:
                extra.setdefault(churn.scope, []).extend(metrics)
        if not extra:
            return data
        resource_metrics = list(data.resource_metrics) or [
            ResourceMetrics(resource=self.resource, scope_metrics=[], schema_url="")
        ]
        first = resource_metrics[0]
        scopes = []
        for sm in first.scope_metrics:
            added = extra.pop(sm.scope.name, [])
            scopes.append(
                ScopeMetrics(scope=sm.scope, metrics=[*sm.metrics, *added], schema_url=sm.schema_url)
                if added
                else sm
            )
        for scope, metrics in extra.items():
            scopes.append(
                ScopeMetrics(scope=InstrumentationScope(scope, __version__), metrics=metrics, schema_url="")
            )
        resource_metrics[0] = ResourceMetrics(
            resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=resource_metrics)

    # -- shedding (the self-watch's hooks) ---------------------------------------------------

    def set_cadence(self, name: str, every: int) -> bool:
        """Run the collector or analyzer `name` every `every`-th tick; return whether it exists."""
        if name not in self.collectors and name not in self.analyzers:
            return False
        self._cadence[name] = max(1, every)
        return True

    def shed_plugins(self, level: int) -> int:
        """Tell every plugin with a `shed(level)` hook the shed level; return how many have one."""
        told = 0
        for plugin in [*self.collectors.values(), *self.analyzers.values()]:
            hook = getattr(plugin, "shed", None)
            if callable(hook):
                try:
                    hook(level)
                    told += 1
                except Exception as exc:  # noqa: BLE001 - a plugin's hook must not stop the watch
                    _log.warning("shed(%d) of %s failed: %s", level, type(plugin).__name__, exc)
        return told

    def _log_once(self, who: str, kind: str, msg: str, *args: object) -> None:
        key = (who, kind)
        level = logging.DEBUG if key in self._logged_failures else logging.WARNING
        self._logged_failures.add(key)
        _log.log(level, msg, *args)

    # -- teardown ----------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Flush and stop every sink (within `timeout` seconds in all), the plugins and the provider."""
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            sink.close(max(0.0, deadline - time.monotonic()))
        closers = [c.close for c in self.collectors.values()] + [a.close for a in self.analyzers.values()]
        for close in closers:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - teardown is best effort
                _log.debug("close failed: %s", exc)
        if self.rollup_db is not None:
            self.rollup_db.close()
        try:
            # Our reader holds nothing to flush; give the SDK a floor so a spent budget is no error.
            self.provider.shutdown(timeout_millis=max(1.0, deadline - time.monotonic()) * 1000)
        except Exception as exc:  # noqa: BLE001 - teardown is best effort
            _log.debug("meter provider shutdown: %s", exc)


_frozen = False


def _freeze_startup_objects() -> None:
    """After the first tick, move every object alive (modules, plugins, caches) out of the GC's
    reach: later collections scan only what ticks create. Once per process, so a reload's
    discarded pipeline is not pinned."""
    global _frozen  # noqa: PLW0603 - one flag for the process
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def new_store(settings: Settings) -> RingStore:
    """Return an empty ring store shaped by the settings."""
    cfg = settings.store
    return RingStore(
        interval=settings.interval,
        raw_window=cfg.raw_window,
        rollup_window=cfg.rollup_window,
        max_series=cfg.max_series,
        evict_after=cfg.evict_after,
        rollup_seconds=cfg.rollup_resolution,
    )


def store_fits(store: RingStore, settings: Settings) -> bool:
    """Return whether an existing store has the shape the settings ask for (reusable across a reload)."""
    cfg = settings.store
    wanted = (
        settings.interval,
        max(2, math.ceil(cfg.raw_window / settings.interval)),
        max(2, math.ceil(cfg.rollup_window / cfg.rollup_resolution)),
        cfg.max_series,
        cfg.evict_after,
        cfg.rollup_resolution,
    )
    shape = (store.interval, store.raw_len, store.roll_len, store.max_series, store.evict_after)
    return (*shape, store.rollup_seconds) == wanted


def iter_points(data: MetricsData) -> Iterable[tuple[Metric, object]]:
    """Yield (metric, data point) for every point of a collection."""
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    yield metric, point
