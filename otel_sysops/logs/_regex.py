"""Linear-time regular expressions for log lines (RE2 through the `google-re2` binding).

A log line is untrusted text: with a backtracking engine one crafted line can cost seconds of
CPU per pattern. RE2 matches in time linear in the line, whatever the pattern and the input,
so every built-in and user pattern is compiled here. What RE2 does not support (backreferences,
lookaround) is refused at configuration time with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

import re2

ENGINE = "re2"


class RegexError(ValueError):
    """A pattern RE2 cannot compile (the message says why)."""


class RegexMatch(Protocol):
    """What a match offers: its named groups."""

    def groupdict(self) -> dict[str, Any]:
        """Return the named groups: str, or None for a group that did not take part (as `re`)."""


class Regex(Protocol):
    """A compiled pattern: the few methods the log matcher uses."""

    @property
    def pattern(self) -> str:
        """Return the source text."""

    @property
    def groupindex(self) -> Mapping[str, int]:
        """Return the named groups and their numbers."""

    def search(self, text: str) -> RegexMatch | None:
        """Return the first match anywhere in `text`, or None."""

    def fullmatch(self, text: str) -> RegexMatch | None:
        """Return a match of the whole of `text`, or None."""


def _options() -> Any:
    options = re2.Options()
    # Errors are raised to us (and reported as one configuration line), not printed on stderr.
    options.log_errors = False
    return options


def compile_regex(source: str) -> Regex:
    """Compile `source` with RE2; raise RegexError with RE2's reason when it is not accepted."""
    try:
        return cast(Regex, re2.compile(source, _options()))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(f"{reason} (patterns use RE2 syntax: no backreferences or lookaround)") from None


def escape(text: str) -> str:
    """Return `text` as a pattern matching it literally."""
    return cast(str, re2.escape(text))
