"""Settings of the kernel and system log analyzer (`[logs]`, `SYSOPS_LOGS__*`)."""

from __future__ import annotations

from ._base import Section


class LogsSettings(Section):
    """Options of the logs section."""

    enabled: bool = True
