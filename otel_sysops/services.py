"""The service factories now live in the composition root, `otel_sysops.app`; kept as an alias."""

from otel_sysops.app import alert_service, default_service_factories, log_service, nats_service

__all__ = ["alert_service", "default_service_factories", "log_service", "nats_service"]
