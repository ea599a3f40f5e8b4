"""The long-lived services `otel-sysops run` starts beside the tick loop."""

from __future__ import annotations

from .agent import ServiceFactory
from .alerts._build import alert_service
from .bridge import nats_service
from .logs._service import log_service


def default_service_factories() -> list[ServiceFactory]:
    """Return the factories of every built-in service; each returns None when its settings turn it off."""
    # The alert manager first: the log reader submits to it, the NATS bridge registers on it.
    return [alert_service, log_service, nats_service]
