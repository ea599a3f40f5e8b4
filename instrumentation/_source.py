"""Checks a collector makes on its sources when it starts."""

from __future__ import annotations

import os
from pathlib import Path

from otel_sysops.errors import CollectorUnavailableError


def require_readable(path: Path) -> None:
    """Raise CollectorUnavailableError (one INFO line, the family off) unless `path` can be read."""
    if not path.exists():
        raise CollectorUnavailableError(f"{path} does not exist")
    if not os.access(path, os.R_OK):
        raise CollectorUnavailableError(f"{path} is not readable (permission)")
