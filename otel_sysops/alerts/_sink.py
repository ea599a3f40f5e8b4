"""The alert sink, now on the ground floor (`otel_sysops.findings`); kept as an alias."""

from otel_sysops.findings import AlertSink, LogAlertSink

__all__ = ["AlertSink", "LogAlertSink"]
