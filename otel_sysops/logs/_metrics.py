"""`sysops.log.*` instruments, registered on every pipeline (they read the analyzer's counters)."""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.log_attributes import LOG_FILE_PATH
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from ._analyzer import ATTR_SOURCE, METRIC, LogStats
from ._patterns import ATTR_PATTERN

SCOPE = "otel_sysops.logs"


def register_log_metrics(meter: Meter, stats: LogStats) -> None:
    """Create `sysops.log.matches`, `sysops.log.lines` and `sysops.log.source.errors` on `meter`."""

    def matches(_: CallbackOptions) -> Iterable[Observation]:
        by_pattern = stats.snapshot()[1]
        return [Observation(n, {ATTR_PATTERN: name}) for name, n in sorted(by_pattern.items())]

    def lines(_: CallbackOptions) -> Iterable[Observation]:
        by_source = stats.snapshot()[0]
        out = []
        for (kind, path), n in sorted(by_source.items()):
            attrs = {ATTR_SOURCE: kind, LOG_FILE_PATH: path} if path else {ATTR_SOURCE: kind}
            out.append(Observation(n, attrs))
        return out

    def errors(_: CallbackOptions) -> Iterable[Observation]:
        by_error = stats.snapshot()[2]
        return [
            Observation(n, {ATTR_SOURCE: kind, ERROR_TYPE: err})
            for (kind, err), n in sorted(by_error.items())
        ]

    meter.create_observable_counter(METRIC, [matches], "{match}", "Log lines that matched each pattern")
    meter.create_observable_counter("sysops.log.lines", [lines], "{line}", "Log lines read, by source")
    meter.create_observable_counter(
        "sysops.log.source.errors",
        [errors],
        "{error}",
        "Log source failures and skipped records, by source and kind",
    )
