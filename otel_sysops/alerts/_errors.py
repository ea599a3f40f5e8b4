"""Errors of the alert manager and its channels."""

from __future__ import annotations

from otel_sysops.errors import SysopsError


class ChannelError(SysopsError):
    """A channel failed to deliver; the message never contains secrets (URLs are masked)."""
