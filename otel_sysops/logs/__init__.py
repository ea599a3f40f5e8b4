"""Kernel and system log analyzer: sources (kmsg, files, journal), patterns, findings and counters."""

from ._analyzer import METRIC, LogAnalyzer, LogStats
from ._follow import FileFollower
from ._parse import JournalEntry, KmsgRecord, parse_dmesg_raw, parse_journal, parse_kmsg, sanitize, split_kmsg
from ._patterns import XID_SEVERITY, Match, Matcher, Pattern, builtin_patterns, compile_custom

__all__ = [
    "METRIC",
    "XID_SEVERITY",
    "FileFollower",
    "JournalEntry",
    "KmsgRecord",
    "LogAnalyzer",
    "LogStats",
    "Match",
    "Matcher",
    "Pattern",
    "builtin_patterns",
    "compile_custom",
    "parse_dmesg_raw",
    "parse_journal",
    "parse_kmsg",
    "sanitize",
    "split_kmsg",
]
