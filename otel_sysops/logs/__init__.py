"""Kernel and system log analyzer: sources (kmsg, files, journal), patterns, findings and counters."""

from ._analyzer import METRIC, LogAnalyzer, LogStats
from ._follow import FileFollower
from ._metrics import SCOPE as METRICS_SCOPE
from ._metrics import register_log_metrics
from ._parse import JournalEntry, KmsgRecord, parse_dmesg_raw, parse_journal, parse_kmsg, sanitize, split_kmsg
from ._patterns import XID_SEVERITY, Match, Matcher, Pattern, builtin_patterns, compile_custom
from ._service import LogService, build_log_service

__all__ = [
    "METRIC",
    "METRICS_SCOPE",
    "XID_SEVERITY",
    "FileFollower",
    "JournalEntry",
    "KmsgRecord",
    "LogAnalyzer",
    "LogService",
    "LogStats",
    "Match",
    "Matcher",
    "Pattern",
    "build_log_service",
    "builtin_patterns",
    "compile_custom",
    "parse_dmesg_raw",
    "parse_journal",
    "parse_kmsg",
    "register_log_metrics",
    "sanitize",
    "split_kmsg",
]
