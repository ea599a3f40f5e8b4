"""Settings of the agent's health judgement (`[health]`, `SYSOPS_HEALTH__*`)."""

from __future__ import annotations

from pydantic import Field

from ._base import Section


class HealthSettings(Section):
    """When a failing collector's circuit opens, and when it is tried again."""

    # Consecutive failed ticks before a collector is no longer sampled every tick.
    failures_to_open: int = Field(5, ge=1, le=10_000)
    # Seconds an open circuit waits before one retry; a success closes it, a failure waits again.
    retry_after: float = Field(60.0, gt=0, le=86400)
