"""The log analyzer service: every source in one task group, each supervised and retried on failure."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from ._analyzer import LogAnalyzer
from ._patterns import Matcher, Pattern, builtin_patterns, compile_custom
from ._sources import FileSource, JournalSource, KmsgSource, LogSource, SourceUnavailableError

if TYPE_CHECKING:
    from otel_sysops.findings import AlertSink
    from otel_sysops.settings import Settings

_log = logging.getLogger(__name__)

BACKOFF_START = 1.0
BACKOFF_MAX = 60.0
# An unavailable source (no permission, no binary) is looked at again this rarely.
UNAVAILABLE_RETRY = 300.0
# A run this long counts as healthy: the next failure is reported again and backoff restarts.
HEALTHY_AFTER = 60.0


def patterns_from(settings: Settings) -> list[Pattern]:
    """Return the built-in patterns not disabled, then the custom ones."""
    cfg = settings.logs
    out = [p for p in builtin_patterns() if p.name not in set(cfg.disabled_patterns)]
    out.extend(
        compile_custom(p.name, p.regex, p.severity, p.message, p.keywords, p.key) for p in cfg.patterns
    )
    return out


def syslog_files(host_root: Path) -> list[Path]:
    """Return the distribution's syslog file under `host_root` (Debian: syslog; Red Hat, SUSE: messages)."""
    candidates = ["var/log/syslog", "var/log/messages"]
    if distribution_ids(host_root) & {"rhel", "fedora", "centos", "suse", "opensuse", "sles", "amzn"}:
        candidates.reverse()
    return [host_root / c for c in candidates if (host_root / c).is_file()][:1]


def distribution_ids(host_root: Path) -> set[str]:
    """Return ID and ID_LIKE of the host's os-release(5) (empty when it cannot be read)."""
    for name in ("etc/os-release", "usr/lib/os-release"):
        try:
            text = (host_root / name).read_text(errors="replace")
        except OSError:
            continue
        ids: set[str] = set()
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() in ("ID", "ID_LIKE"):
                ids.update(value.strip().strip("\"'").lower().split())
        return ids
    return set()


class LogService:
    """Follow kmsg, syslog files and the journal concurrently; match every line; expire events."""

    name = "logs"

    def __init__(self, analyzer: LogAnalyzer, sources: list[LogSource]) -> None:
        self.analyzer = analyzer
        self.sources = sources

    async def run(self) -> None:
        _log.info(
            "log analyzer: %d patterns; sources: %s",
            len(self.analyzer.matcher.patterns),
            ", ".join(s.name for s in self.sources),
        )
        async with anyio.create_task_group() as tg:
            for source in self.sources:
                tg.start_soon(self._supervise, source)
            tg.start_soon(self._expire)

    async def aclose(self, timeout: float) -> None:
        """Nothing is buffered: findings are handed to the alert sink as lines are read."""

    async def _expire(self) -> None:
        while True:
            await anyio.sleep(1.0)
            try:
                self.analyzer.expire()
            except Exception:  # noqa: BLE001 - a failing alert sink must not stop the log readers
                _log.exception("log analyzer: clearing quiet log alerts failed")

    async def _supervise(self, source: LogSource) -> None:
        """Run a source forever: report a failure once, retry with exponential backoff."""
        failures = 0
        reported = False
        while True:
            started = time.monotonic()
            try:
                await source.run()
                reason, delay, level = "stopped", BACKOFF_START, logging.WARNING
            except SourceUnavailableError as exc:
                reason, delay, level = str(exc), UNAVAILABLE_RETRY, logging.INFO
            except Exception as exc:  # noqa: BLE001 - one source's failure must never stop the others
                reason, delay, level = f"{type(exc).__name__}: {exc}", BACKOFF_START, logging.WARNING
            self.analyzer.stats.add_error(source.kind, "failure")
            if time.monotonic() - started >= HEALTHY_AFTER:
                failures, reported = 0, False
            if level == logging.WARNING:
                delay = min(BACKOFF_MAX, BACKOFF_START * 2**failures)
            failures += 1
            if not reported:
                _log.log(
                    level, "log source %s: %s; retrying in %.0fs (reported once)", source.name, reason, delay
                )
                reported = True
            else:
                _log.debug("log source %s: %s; retrying in %.0fs", source.name, reason, delay)
            await anyio.sleep(delay)


def build_log_service(settings: Settings, alerts: AlertSink) -> LogService | None:
    """Build the service the settings describe; None when off or when no source can run."""
    cfg = settings.logs
    if not cfg.enabled:
        return None
    analyzer = LogAnalyzer(
        Matcher(patterns_from(settings), max_line=cfg.max_line_length),
        alerts,
        resolve_after=cfg.resolve_after,
        resubmit_after=cfg.resubmit_after,
        max_line=cfg.max_line_length,
    )
    sources: list[LogSource] = []
    kmsg: KmsgSource | None = None
    if cfg.kmsg:
        kmsg = KmsgSource(
            analyzer,
            cfg.kmsg_path,
            replay=cfg.replay,
            dmesg=(shutil.which(cfg.dmesg_path) if cfg.dmesg_path else None),
            poll_interval=cfg.poll_interval,
        )
        sources.append(kmsg)
    files = syslog_files(settings.host_root) if cfg.files is None else list(cfg.files)
    if cfg.files is None and not files:
        _log.info(
            "no /var/log/syslog or /var/log/messages under %s; no syslog file followed", settings.host_root
        )
    sources.extend(
        FileSource(analyzer, path, poll_interval=cfg.poll_interval, state_dir=cfg.state_dir) for path in files
    )
    if cfg.journal:
        journal = _journal_source(settings, analyzer, kmsg)
        if journal is not None:
            sources.append(journal)
    if not sources:
        _log.info("log analyzer: no log source enabled")
        return None
    return LogService(analyzer, sources)


def _journal_source(
    settings: Settings, analyzer: LogAnalyzer, kmsg: KmsgSource | None
) -> JournalSource | None:
    cfg = settings.logs
    journalctl = shutil.which(cfg.journalctl_path)
    root = settings.host_root
    if journalctl is None:
        _log.info("%s not found: the systemd journal is not followed", cfg.journalctl_path)
        return None
    if (
        not any((root / d).is_dir() for d in ("run/log/journal", "var/log/journal"))
        and cfg.journalctl_path == "journalctl"
    ):
        _log.info("no systemd journal under %s: the journal is not followed", root)
        return None
    return JournalSource(
        analyzer,
        journalctl,
        root=None if root == Path("/") else root,
        skip_kernel=(lambda: kmsg.active) if kmsg is not None else (lambda: False),
    )
