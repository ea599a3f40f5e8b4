"""Settings of the analyzers (`[analyzers]`, `SYSOPS_ANALYZERS__*`)."""

from __future__ import annotations

from ._base import Section


class AnalyzersSettings(Section):
    """Which analyzers run."""

    enabled: bool = True
    # Entry-point names never to run.
    disabled: list[str] = []
