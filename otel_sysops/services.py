"""The long-lived services `otel-sysops run` starts beside the tick loop."""

from __future__ import annotations

from .agent import ServiceFactory
from .bridge import nats_service


def default_service_factories() -> list[ServiceFactory]:
    """Return the factories of every built-in service; each returns None when its settings turn it off."""
    return [nats_service]
