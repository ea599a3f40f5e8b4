"""The agent now lives in the composition root, `otel_sysops.app`; kept as an alias."""

from otel_sysops.app import SHUTDOWN_TIMEOUT, Agent, Service, ServiceFactory, build_pipeline
from otel_sysops.health import Health

__all__ = ["SHUTDOWN_TIMEOUT", "Agent", "Health", "Service", "ServiceFactory", "build_pipeline"]
