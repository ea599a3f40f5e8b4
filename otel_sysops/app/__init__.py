"""The composition root: the one place that assembles the agent from the settings.

It builds the pipeline, the sinks, the HTTP server (/healthz and /readyz always, /metrics when
the Prometheus sink is on, more handlers through `Agent.mount`) and the services, and hands each
part only what it needs. Nothing below this package imports it.
"""

from ._agent import SHUTDOWN_TIMEOUT, Agent
from ._build import build_pipeline
from ._http import health_handler
from ._services import (
    PipelineHook,
    Service,
    ServiceContext,
    ServiceFactory,
    alert_service,
    api_service,
    default_service_factories,
    log_service,
    nats_service,
)

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "Agent",
    "PipelineHook",
    "Service",
    "ServiceContext",
    "ServiceFactory",
    "alert_service",
    "api_service",
    "build_pipeline",
    "default_service_factories",
    "health_handler",
    "log_service",
    "nats_service",
]
