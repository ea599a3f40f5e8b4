"""The exception tree of otel-sysops: every error we raise derives from `SysopsError`."""

from __future__ import annotations

__all__ = [
    "CollectorUnavailableError",
    "ConfigError",
    "MissingDependencyError",
    "SysopsError",
]


class SysopsError(Exception):
    """Root of every error otel-sysops raises on purpose."""


class ConfigError(SysopsError):
    """A setting is invalid; the message is one line naming the field and what is accepted."""


class CollectorUnavailableError(SysopsError):
    """A plugin cannot run on this host (no such source, no permission, no driver)."""


class MissingDependencyError(SysopsError):
    """An optional dependency is not installed; the message names the extra that provides it."""
