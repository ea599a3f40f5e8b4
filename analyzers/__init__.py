"""Detectors for otel-sysops: pure numpy functions over the ring store, registered as entry points."""
