"""Settings of the alert manager (`[alerts]`, `SYSOPS_ALERTS__*`)."""

from __future__ import annotations

from ._base import Section


class AlertsSettings(Section):
    """Where alerts go; with no channel configured they go to the log."""

    enabled: bool = True
