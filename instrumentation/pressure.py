"""Pressure stall information: the share of time tasks stalled on CPU, memory, I/O (and IRQ),
averaged over 10 s, 60 s and 300 s, and the total stall time.

Source: /proc/pressure/{cpu,memory,io,irq} (Documentation/accounting/psi.rst; Linux 4.20+, irq
since 6.1 with CONFIG_IRQ_TIME_ACCOUNTING). Absent when the kernel is built without PSI or
booted with psi=0.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.pressure import Pressure, parse_pressure

_log = logging.getLogger(__name__)

STALL_RATIO = "sysops.pressure.stall.ratio"
STALL_TIME = "sysops.pressure.stall.time"
RESOURCE = "sysops.pressure.resource"
KIND = "sysops.pressure.kind"
WINDOW = "sysops.pressure.window"

RESOURCES = ("cpu", "memory", "io", "irq")
WINDOWS = {"avg10": "10s", "avg60": "60s", "avg300": "300s"}


class PressureCollector(Collector[dict[str, Pressure]]):
    """`sysops.pressure.stall.ratio` and `sysops.pressure.stall.time`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._dir = ctx.procfs / "pressure"
        self._resources = [r for r in RESOURCES if (self._dir / r).exists()]
        if not self._resources:
            raise CollectorUnavailableError(f"{self._dir} has no PSI files (kernel without PSI, or psi=0)")
        self._disabled: set[str] = set()

    def sample(self, now: float) -> dict[str, Pressure]:
        out: dict[str, Pressure] = {}
        for resource in self._resources:
            if resource in self._disabled:
                continue
            path = self._dir / resource
            try:
                text = self.ctx.files.read_text(path)
            except OSError as exc:
                # EOPNOTSUPP: PSI compiled in but switched off (psi=0, or irq without accounting).
                if isinstance(exc, PermissionError) or exc.errno == errno.EOPNOTSUPP:
                    self._disabled.add(resource)
                    _log.warning("pressure of %s disabled: %s: %s", resource, path, exc.strerror)
                continue
            pressure = parse_pressure(text)
            self.ctx.count_error("malformed_line", pressure.malformed)
            out[resource] = pressure
        return out

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            STALL_RATIO,
            [self._ratio],
            "1",
            "Share of wall time in which some (or all non-idle) tasks stalled on the resource",
        )
        meter.create_observable_counter(
            STALL_TIME, [self._time], "s", "Total time some (or all non-idle) tasks stalled on the resource"
        )

    def _ratio(self, _: CallbackOptions) -> Iterable[Observation]:
        for resource, pressure in (self.snapshot or {}).items():
            for kind, line in pressure.lines.items():
                for field, window in WINDOWS.items():
                    # psi.rst: the averages are percentages.
                    yield Observation(
                        line.averages[field] / 100, {RESOURCE: resource, KIND: kind, WINDOW: window}
                    )

    def _time(self, _: CallbackOptions) -> Iterable[Observation]:
        for resource, pressure in (self.snapshot or {}).items():
            for kind, line in pressure.lines.items():
                yield Observation(line.total_us / 1e6, {RESOURCE: resource, KIND: kind})
