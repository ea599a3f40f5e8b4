"""Time: clock offset, maximum and estimated error, synchronisation state, frequency adjustment,
TAI offset, PPS discipline (adjtimex(2)); the current and available clocksources.

Sources: adjtimex(2) with modes 0 (read only), and
{sysfs}/devices/system/clocksource/clocksource0/{current,available}_clocksource
(Documentation/ABI/testing/sysfs-devices-system-clocksource... and timekeeping.rst).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.timex import LibcTimex, Timex, TimexSource
from ._optional import OptionalFiles

SYNC = "sysops.time.sync.status"
CLOCKSOURCE = "sysops.time.clocksource"
CLOCKSOURCE_NAME = "sysops.time.clocksource.name"
CLOCKSOURCE_STATE = "sysops.time.clocksource.state"

# name -> (Timex field, unit, instrument kind, description)
GAUGES = {
    "sysops.time.offset": ("offset", "s", "Clock offset the kernel is correcting (adjtimex offset)"),
    "sysops.time.max_error": ("max_error", "s", "Maximum error of the clock (adjtimex maxerror)"),
    "sysops.time.estimated_error": (
        "estimated_error",
        "s",
        "Estimated error of the clock (adjtimex esterror)",
    ),
    "sysops.time.frequency_adjustment": (
        "frequency_adjustment",
        "1",
        "Clock frequency correction as a ratio",
    ),
    "sysops.time.loop_time_constant": ("constant", "1", "PLL time constant"),
    "sysops.time.tick": ("tick", "s", "Length of a clock tick"),
    "sysops.time.tai_offset": ("tai", "s", "TAI minus UTC as the kernel knows it"),
    "sysops.time.status": ("status", "1", "The adjtimex STA_* status bits"),
    "sysops.time.pps.frequency": ("pps_frequency", "1", "PPS frequency offset, ppm"),
    "sysops.time.pps.jitter": ("pps_jitter", "s", "PPS jitter"),
    "sysops.time.pps.shift": ("pps_shift", "s", "PPS calibration interval, log2 seconds"),
    "sysops.time.pps.stability": ("pps_stability", "1", "PPS stability, ppm"),
}
COUNTERS = {
    "sysops.time.pps.jitter_limit_exceeded": ("pps_jitter_count", "{event}", "PPS jitter limit exceeded"),
    "sysops.time.pps.calibrations": ("pps_calibrations", "{event}", "PPS calibration intervals"),
    "sysops.time.pps.errors": ("pps_errors", "{event}", "PPS calibration errors"),
    "sysops.time.pps.stability_exceeded": (
        "pps_stability_exceeded",
        "{event}",
        "PPS stability limit exceeded",
    ),
}


@dataclass(slots=True)
class TimeSnapshot:
    """This tick's adjtimex reading (None when it failed), wall time and clocksources."""

    timex: Timex | None
    now: float
    current: str | None = None
    available: list[str] = field(default_factory=list)


class TimeCollector(Collector[TimeSnapshot]):
    """`sysops.time.*`."""

    def __init__(self, ctx: CollectorContext, source: TimexSource | None = None) -> None:
        super().__init__(ctx)
        try:
            self._source: TimexSource = source if source is not None else LibcTimex()
        except (OSError, AttributeError) as exc:
            raise CollectorUnavailableError(f"adjtimex is not available: {exc}") from exc
        self._dir = ctx.sysfs / "devices" / "system" / "clocksource" / "clocksource0"
        self._optional = OptionalFiles(ctx)

    def sample(self, now: float) -> TimeSnapshot:
        try:
            timex: Timex | None = self._source.read()
        except OSError:
            self.ctx.count_error("adjtimex")
            timex = None
        snap = TimeSnapshot(timex, time.time())
        current = self._optional.read(self._dir / "current_clocksource", counted=False)
        if current is not None:
            snap.current = current.strip() or None
        available = self._optional.read(self._dir / "available_clocksource", counted=False)
        if available is not None:
            snap.available = available.split()
        return snap

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            SYNC, [self._sync], "1", "Clock synchronised (1) or not (0: STA_UNSYNC set or TIME_ERROR)"
        )
        for name, (attr, unit, description) in GAUGES.items():
            meter.create_observable_gauge(name, [self._field(attr)], unit, description)
        for name, (attr, unit, description) in COUNTERS.items():
            meter.create_observable_counter(name, [self._field(attr)], unit, description)
        meter.create_observable_gauge(
            "sysops.time.now", [self._now], "s", "Wall-clock time, seconds since the Unix epoch"
        )
        meter.create_observable_gauge(
            CLOCKSOURCE, [self._clocksources], "1", "1 per clocksource, by state (current, available)"
        )

    def _sync(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.timex is not None:
            yield Observation(1 if snap.timex.synchronised else 0)

    def _field(self, attr: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.timex is not None:
                yield Observation(getattr(snap.timex, attr))

        return observe

    def _now(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None:
            yield Observation(self.snapshot.now)

    def _clocksources(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        if snap.current is not None:
            yield Observation(1, {CLOCKSOURCE_NAME: snap.current, CLOCKSOURCE_STATE: "current"})
        for name in snap.available:
            yield Observation(1, {CLOCKSOURCE_NAME: name, CLOCKSOURCE_STATE: "available"})
