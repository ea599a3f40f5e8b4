"""The finding model, now on the ground floor (`otel_sysops.findings`); kept as an alias."""

from otel_sysops.findings import Finding, Severity, fingerprint

__all__ = ["Finding", "Severity", "fingerprint"]
