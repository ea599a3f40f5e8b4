"""Export each tick over OTLP on a worker thread: a slow or dead endpoint never delays a tick."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Protocol

from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData

from otel_sysops._memory import release_free_memory
from otel_sysops.errors import ConfigError
from otel_sysops.settings import OtlpSettings

_log = logging.getLogger(__name__)

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
_MAX_BACKOFF = 30.0


class Exporter(Protocol):
    """The part of an OTLP MetricExporter the worker uses."""

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = ..., **kwargs: object
    ) -> MetricExportResult: ...

    def shutdown(self, timeout_millis: float = ..., **kwargs: object) -> None: ...


def otlp_enabled(settings: OtlpSettings, environ: Mapping[str, str] | None = None) -> bool:
    """Return whether OTLP export is on: explicitly, or because an OTLP endpoint variable is set."""
    if settings.enabled is not None:
        return settings.enabled
    env = os.environ if environ is None else environ
    return any(env.get(var) for var in _ENDPOINT_VARS)


def otlp_protocol(settings: OtlpSettings, environ: Mapping[str, str] | None = None) -> str:
    """Return the OTLP protocol: the setting, then the standard variables, then grpc."""
    env = os.environ if environ is None else environ
    protocol = (
        settings.protocol
        or env.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if protocol not in ("grpc", "http/protobuf"):
        raise ConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; accepted: grpc, http/protobuf"
        )
    return protocol


def make_exporter(protocol: str) -> Exporter:
    """Build the OTLP exporter for `protocol`, importing only that transport (grpc costs ~15 MB)."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as Grpc

        return Grpc()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as Http

    return Http()


class OtlpSink:
    """Queue collections and export them in order on one worker, with bounded retry and buffer."""

    name = "otlp"

    def __init__(
        self,
        exporter: Exporter,
        queue_size: int = 60,
        max_attempts: int = 5,
        backoff: float = 1.0,
        timeout_millis: float = 10_000,
        max_points: int = 20_000,
    ) -> None:
        self._exporter = exporter
        self._queue: deque[tuple[MetricsData, int]] = deque()
        self._queue_size = queue_size
        # The backlog is bounded in data points too: at 1 s ticks with many processes a tick holds
        # thousands of points, so a count of ticks alone would not bound memory.
        self._max_points = max_points
        self._points = 0
        self._backlog_peak = 0
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._timeout_millis = timeout_millis
        self._cond = threading.Condition()
        self._stopping = False
        self._deadline = float("inf")
        self._failures = 0
        # Collections dropped since the endpoint last accepted one: the outage is reported on its
        # first drop and on its end, not once per collection.
        self._outage_dropped = 0
        self.dropped = 0
        self.exported = 0
        self._thread = threading.Thread(target=self._run, name="sysops-otlp", daemon=True)
        self._thread.start()

    def consume(self, data: MetricsData, timestamp: float) -> None:
        points = _points(data)
        with self._cond:
            # Cumulative data: dropping the oldest tick loses resolution, never totals.
            while self._queue and (
                len(self._queue) >= self._queue_size or self._points + points > self._max_points
            ):
                self._points -= self._queue.popleft()[1]
                self.dropped += 1
            self._queue.append((data, points))
            self._points += points
            self._backlog_peak = max(self._backlog_peak, len(self._queue))
            self._cond.notify()

    def pending_points(self) -> int:
        """Return the number of data points waiting to be exported."""
        with self._cond:
            return self._points

    def failures(self) -> int:
        return self._failures

    def pending(self) -> int:
        """Return the number of collections waiting to be exported."""
        with self._cond:
            return len(self._queue)

    def _drop_all(self) -> None:
        """Shutting down and out of time: what is left is lost, and counted (the lock is held)."""
        self.dropped += len(self._queue)
        self._queue.clear()
        self._points = 0

    def _next(self) -> tuple[MetricsData, float] | None:
        """Wait for the oldest collection and the time its export may take (None: stop now)."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue:
                return None
            timeout_millis = self._timeout_millis
            if self._stopping:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self._drop_all()
                    return None
                timeout_millis = min(timeout_millis, left * 1000)
            return self._queue[0][0], timeout_millis

    def _run(self) -> None:
        attempts = 0
        while (job := self._next()) is not None:
            data, timeout_millis = job
            try:
                result = self._exporter.export(data, timeout_millis=timeout_millis)
            except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the worker
                _log.warning("OTLP export raised %s: %s", type(exc).__name__, exc)
                result = MetricExportResult.FAILURE
            recovered = False
            with self._cond:
                if result is MetricExportResult.SUCCESS:
                    attempts = 0
                    self.exported += 1
                    if self._queue and self._queue[0][0] is data:
                        self._points -= self._queue.popleft()[1]
                    recovered = not self._queue and self._backlog_peak > 2
                    if self._outage_dropped:
                        _log.info(
                            "OTLP export recovered; %d collections were dropped while it failed",
                            self._outage_dropped,
                        )
                        self._outage_dropped = 0
                    if not self._queue:
                        self._backlog_peak = 0
                else:
                    self._failures += 1
                    attempts += 1
                    if attempts >= self._max_attempts:
                        if self._queue and self._queue[0][0] is data:
                            self._points -= self._queue.popleft()[1]
                            self.dropped += 1
                            self._outage_dropped += 1
                        log = _log.warning if self._outage_dropped == 1 else _log.debug
                        log(
                            "OTLP export failed %d times; dropping collections until it recovers (%d so far)",
                            attempts,
                            self._outage_dropped,
                        )
                        attempts = 0
                        continue
                    delay = min(self._backoff * 2 ** (attempts - 1), _MAX_BACKOFF)
                    if self._stopping and time.monotonic() + delay > self._deadline:
                        self._drop_all()
                        return
                    self._cond.wait(delay)
                    continue
            if recovered:
                # A backlog has drained: hand the memory it held back to the system.
                del data
                release_free_memory()

    def close(self, timeout: float) -> None:
        """Let the worker drain the queue for up to `timeout` seconds, then shut the exporter down."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            # An exporter that ignores its timeout: the daemon thread is left behind, not waited on.
            _log.warning("OTLP export still running %.1fs after shutdown began; left behind", timeout)
        try:
            self._exporter.shutdown(timeout_millis=max(timeout, 0.1) * 1000)
        except Exception as exc:  # noqa: BLE001 - shutdown is best effort
            _log.debug("OTLP exporter shutdown: %s", exc)


def _points(data: MetricsData) -> int:
    """Return how many data points a collection holds (at least 1, so a tick always counts)."""
    total = 0
    for rm in data.resource_metrics:
        for sm in getattr(rm, "scope_metrics", ()):
            for metric in sm.metrics:
                total += len(metric.data.data_points)
    return max(1, total)
