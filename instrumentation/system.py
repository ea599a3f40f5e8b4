"""System: uptime, from /proc/uptime (proc(5))."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.oneline import parse_uptime
from ._source import require_readable


class SystemCollector(Collector[float | None]):
    """`system.uptime`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "uptime"
        require_readable(self._path)

    def sample(self, now: float) -> float | None:
        uptime = parse_uptime(self.ctx.files.read_text(self._path))
        if uptime is None:
            self.ctx.count_error("malformed_line")
        return uptime

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(sm.SYSTEM_UPTIME, [self._uptime], "s", "Seconds since the host booted")

    def _uptime(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None:
            yield Observation(self.snapshot)
