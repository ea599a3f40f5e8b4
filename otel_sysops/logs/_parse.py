"""Pure parsers: sanitising, kmsg records, `dmesg --raw` lines, journal JSON, syslog headers."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_MAX_LINE = 4096

# C0 controls, DEL and C1 controls; tab becomes a space, everything else goes.
_CONTROL: dict[int, int | None] = dict.fromkeys((*range(0x20), 0x7F, *range(0x80, 0xA0)))
_CONTROL[0x09] = 0x20
# ANSI/VT100 escape sequences (colours, cursor moves) a program may have written to its log.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def _number(word: str, max_digits: int = 20) -> int | None:
    """Return a non-negative decimal of ASCII digits ("²" and "٣" pass `isdigit`, 5,000 digits
    make `int` raise); None for anything else, so a malformed field skips its record."""
    if not word or len(word) > max_digits or not word.isascii() or not word.isdigit():
        return None
    return int(word)


def sanitize(text: str, max_length: int = DEFAULT_MAX_LINE) -> str:
    """Return `text` without escape sequences or control characters, capped at `max_length` characters."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    text = text.translate(_CONTROL).strip()
    if len(text) > max_length:
        return text[: max(0, max_length - 1)] + "…"
    return text


# -- /dev/kmsg -----------------------------------------------------------------------------------

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """One record of /dev/kmsg (Documentation/ABI/testing/dev-kmsg)."""

    facility: int
    level: int
    seq: int
    # Microseconds since boot, on the kernel's monotonic clock.
    usec: int
    flags: str
    message: str
    # The continuation lines (" SUBSYSTEM=pci", " DEVICE=+pci:0000:00:1f.0").
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


def parse_kmsg(record: str) -> KmsgRecord | None:
    """Parse `prio,seq,usec,flags[,...];message` plus continuation lines; None when malformed."""
    head, sep, rest = record.partition(";")
    if not sep:
        return None
    parts = head.split(",")
    if len(parts) < 3:
        return None
    prio, seq, usec = _number(parts[0]), _number(parts[1]), _number(parts[2])
    if prio is None or seq is None or usec is None:
        return None
    message, _, tail = rest.partition("\n")
    fields: dict[str, str] = {}
    for line in tail.split("\n"):
        # dev-kmsg: continuation lines start with a space and carry KEY=value.
        if line.startswith(" ") and "=" in line:
            key, _, value = line[1:].partition("=")
            fields[key] = value
    # prio is (facility << 3) | level, as in syslog(3).
    return KmsgRecord(
        prio >> 3, prio & 7, seq, usec, parts[3] if len(parts) > 3 else "-", message, fields or _EMPTY
    )


def split_kmsg(text: str) -> tuple[list[str], str]:
    """Split text read from a kmsg stream into whole records (header + continuation lines) and the rest.

    The rest is what follows the last newline: an unfinished line, kept for the next read.
    """
    cut = text.rfind("\n")
    if cut < 0:
        return [], text
    records: list[str] = []
    for line in text[:cut].split("\n"):
        if line.startswith(" ") and records:
            records[-1] += "\n" + line
        elif line and not line.startswith(" "):
            records.append(line)
    return records, text[cut + 1 :]


# `dmesg --raw`: "<6>[   12.345678] message" (the fallback when /dev/kmsg cannot be read).
_DMESG = re.compile(r"<([0-9]{1,10})>\[\s*([0-9]{1,20})\.([0-9]{1,20})\]\s?(.*)", re.DOTALL | re.ASCII)


def parse_dmesg_raw(line: str) -> KmsgRecord | None:
    """Parse one line of `dmesg --raw` output into a record (seq unknown: -1); None when malformed."""
    m = _DMESG.fullmatch(line.rstrip("\n"))
    if m is None:
        return None
    prio = int(m.group(1))
    usec = int(m.group(2)) * 1_000_000 + int(m.group(3).ljust(6, "0")[:6])
    return KmsgRecord(prio >> 3, prio & 7, -1, usec, "-", m.group(4))


# -- the systemd journal -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """The fields of one `journalctl -o json` entry the analyzer uses."""

    message: str
    # Seconds since the epoch (__REALTIME_TIMESTAMP), None when absent.
    timestamp: float | None
    cursor: str | None
    identifier: str
    # "kernel" for the kernel's own messages (also read from /dev/kmsg).
    transport: str
    priority: int | None


def _journal_text(value: object) -> str | None:
    """journalctl(1) -o json: a field is a string, an array of bytes when not UTF-8, or null."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode("utf-8", "replace")
    return None


def parse_journal(line: str | bytes) -> JournalEntry | None:
    """Parse one line of `journalctl -o json`; None when it is not an entry with a MESSAGE."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    message = _journal_text(data.get("MESSAGE"))
    if message is None:
        return None
    timestamp: float | None = None
    raw_ts = data.get("__REALTIME_TIMESTAMP")
    micros = _number(raw_ts) if isinstance(raw_ts, str) else None
    if micros is not None:
        timestamp = micros / 1e6
    priority: int | None = None
    raw_prio = data.get("PRIORITY")
    if isinstance(raw_prio, str):
        priority = _number(raw_prio, 3)
    cursor = data.get("__CURSOR")
    return JournalEntry(
        message,
        timestamp,
        cursor if isinstance(cursor, str) else None,
        _journal_text(data.get("SYSLOG_IDENTIFIER")) or _journal_text(data.get("_COMM")) or "",
        _journal_text(data.get("_TRANSPORT")) or "",
        priority,
    )


# -- syslog files --------------------------------------------------------------------------------

# RFC 3164 ("Nov 22 03:17:42 host tag[pid]: msg") or RFC 3339 timestamps (rsyslog's high-precision
# format), then the host and the tag; the kernel's own "[  123.456789] " printk time may follow.
_SYSLOG = re.compile(
    r"(?:<\d{1,3}>)?(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?)"
    r" \S+ [^\s:\[]+(?:\[\d+\])?: (?:\[\s*\d+\.\d+\] )?"
)


def syslog_message(line: str) -> str:
    """Return the message part of a syslog file line (the whole line when it has no known header)."""
    m = _SYSLOG.match(line)
    return line[m.end() :] if m is not None else line
