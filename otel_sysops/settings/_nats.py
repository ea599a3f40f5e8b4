"""Settings of the NATS fleet bridge (`[nats]`, `SYSOPS_NATS__*`)."""

from __future__ import annotations

from ._base import Section


class NatsSettings(Section):
    """Options of the nats section."""

    enabled: bool = False
