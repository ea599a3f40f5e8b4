"""Read one optional source file: a missing or unreadable file disables only what comes from it.

Every failure is counted in `otel_sysops.collector.errors` with its kind (`missing_file`,
`permission`, `read_error`) on every tick it happens, and logged once per file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from otel_sysops.plugin import CollectorContext, read_text_file

from ._linux.oneline import parse_int

_log = logging.getLogger(__name__)


class OptionalFiles:
    """Read files through the tick cache; return None (counted, logged once) when one cannot be read."""

    def __init__(self, ctx: CollectorContext) -> None:
        self._ctx = ctx
        self._logged: set[Path] = set()

    def read(self, path: Path, *, counted: bool = True) -> str | None:
        """Return the file's text, or None when it is missing or unreadable.

        `counted=False` is for files whose absence is normal (a module not loaded, no such
        hardware): still None, but neither counted nor logged.
        """
        try:
            return self._ctx.files.read_text(path)
        except FileNotFoundError:
            if counted:
                self._fail(path, "missing_file", "does not exist", logging.INFO)
        except PermissionError:
            self._fail(path, "permission", "is not readable (permission)", logging.WARNING)
        except OSError as exc:
            self._fail(path, "read_error", f"cannot be read: {exc.strerror}", logging.WARNING)
        return None

    def _fail(self, path: Path, kind: str, why: str, level: int) -> None:
        self._ctx.count_error(kind)
        if path not in self._logged:
            self._logged.add(path)
            _log.log(level, "%s: %s %s; the figures from it are skipped", self._ctx.name, path, why)


def read_attribute(path: Path) -> str | None:
    """Return a sysfs attribute's text, or None when it is absent or unreadable (normal in sysfs:
    no such hardware, or EINVAL while a device is down); neither counted nor logged."""
    try:
        return read_text_file(path)
    except OSError:
        return None


def read_int_attribute(ctx: CollectorContext, path: Path) -> int | None:
    """Return a one-value sysfs attribute as an integer; None when absent, counted when malformed."""
    text = read_attribute(path)
    if text is None:
        return None
    value = parse_int(text)
    if value is None:
        ctx.count_error("malformed_line")
    return value
