"""The one MetricReader: collects when the pipeline says so and hands the collection back."""

from __future__ import annotations

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData


class TickReader(MetricReader):
    """Collect only on demand (one SDK collection per tick); never on a flush or a scrape."""

    def __init__(self) -> None:
        super().__init__()
        self._received: MetricsData | None = None

    def collect_once(self, timeout_millis: float = 10_000) -> MetricsData | None:
        """Run every observable callback once and return the collection."""
        self._received = None
        self.collect(timeout_millis=timeout_millis)
        data, self._received = self._received, None
        return data

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> None:
        self._received = metrics_data

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        # The SDK's default would collect again; a flush must not add an extra tick.
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._received = None
