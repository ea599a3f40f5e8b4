"""File descriptors: system-wide file handles allocated, the limit, and their ratio.

Source: /proc/sys/fs/file-nr (proc(5)): allocated handles, allocated-but-unused handles (always
0 since Linux 2.6), and fs.file-max.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.oneline import FileNr, parse_file_nr
from ._source import require_readable

_log = logging.getLogger(__name__)

ALLOCATED = "sysops.fd.allocated"
LIMIT = "sysops.fd.limit"
UTILIZATION = "sysops.fd.utilization"


class FdCollector(Collector[FileNr | None]):
    """`sysops.fd.allocated`, `sysops.fd.limit`, `sysops.fd.utilization`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._path = ctx.procfs / "sys" / "fs" / "file-nr"
        require_readable(self._path)

    def sample(self, now: float) -> FileNr | None:
        nr = parse_file_nr(self.ctx.files.read_text(self._path))
        if nr is None:
            self.ctx.count_error("malformed_line")
        return nr

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_up_down_counter(
            ALLOCATED, [self._allocated], "{file}", "File handles allocated and in use, system-wide"
        )
        meter.create_observable_up_down_counter(
            LIMIT, [self._limit], "{file}", "Maximum file handles the kernel allocates (fs.file-max)"
        )
        meter.create_observable_gauge(
            UTILIZATION, [self._utilization], "1", "Share of the file handle limit in use"
        )

    def _allocated(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None:
            yield Observation(self.snapshot.allocated - self.snapshot.unused)

    def _limit(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None:
            yield Observation(self.snapshot.maximum)

    def _utilization(self, _: CallbackOptions) -> Iterable[Observation]:
        nr = self.snapshot
        if nr is not None and nr.maximum > 0:
            yield Observation((nr.allocated - nr.unused) / nr.maximum)
