"""Settings of the kernel and system log analyzer (`[logs]`, `SYSOPS_LOGS__*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from ._base import Section


class LogPatternSettings(Section):
    """One custom pattern (`[[logs.patterns]]`): what to look for and how to report it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    # RE2 regular expression (linear time: no backreferences or lookaround), searched anywhere in
    # the line; named groups (?P<name>...) feed `message` and `key`.
    regex: str
    severity: str = "warning"
    # str.format template over the named groups plus {line}, {source}, {pattern}.
    message: str = ""
    # Literal substrings one of which every matching line contains: the regex then runs only on
    # lines containing one (much faster). Empty: the regex runs on every line.
    keywords: list[str] = []
    # The named groups the alert is deduplicated by (attributes sysops.log.<group>); None: all of them.
    key: list[str] | None = None

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        from otel_sysops.logs import compile_custom

        compile_custom(self.name, self.regex, self.severity, self.message, self.keywords, self.key)
        return self


class LogsSettings(Section):
    """Options of the logs section."""

    enabled: bool = True
    # Syslog-style files to follow; None: /var/log/syslog or /var/log/messages under host_root,
    # whichever the distribution uses and exists; []: none.
    files: list[Path] | None = None
    # Directory (created 0700) where each followed file's position is kept: after a restart the
    # file is read from where the agent stopped (what is still in it). None: from the end.
    state_dir: Path | None = None
    kmsg: bool = True
    kmsg_path: Path = Path("/dev/kmsg")
    # Read the kernel ring buffer from its start (default: only records written from now on).
    replay: bool = False
    # Used when kmsg_path cannot be read (no CAP_SYSLOG); "" turns the fallback off.
    dmesg_path: str = "dmesg"
    journal: bool = True
    journalctl_path: str = "journalctl"
    patterns: list[LogPatternSettings] = []
    # Built-in pattern names not to look for.
    disabled_patterns: list[str] = []
    poll_interval: float = Field(0.25, gt=0, le=60)
    # Bytes of a line kept for matching and messages; longer lines are cut to this before matching.
    max_line_length: int = Field(4096, ge=80, le=65536)
    # Seconds without a new match after which a log alert is sent as resolved (at least 1: every
    # log alert resolves, so the firing set stays bounded).
    resolve_after: float = Field(300.0, ge=1)
    # Seconds between repeats of a firing log alert while it keeps matching (with its count).
    resubmit_after: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _names(self) -> Self:
        from otel_sysops.logs import builtin_patterns

        builtin = {p.name for p in builtin_patterns()}
        for name in self.disabled_patterns:
            if name not in builtin:
                raise ValueError(
                    f"disabled_patterns: unknown pattern {name!r}; accepted: {', '.join(sorted(builtin))}"
                )
        seen: set[str] = set()
        for custom in self.patterns:
            if custom.name in builtin or custom.name in seen:
                raise ValueError(f"pattern {custom.name!r}: name already used (built-in or earlier pattern)")
            seen.add(custom.name)
        return self
