"""Pure parsers: sanitising, kmsg records, dmesg --raw lines, journal JSON, syslog headers."""

from __future__ import annotations

import json
import string
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_sysops.logs import parse_dmesg_raw, parse_journal, parse_kmsg, sanitize, split_kmsg
from otel_sysops.logs._parse import syslog_message
from tests.numbers import tokens

SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # the Unicode category hypothesis is told to leave out


def test_sanitize_removes_control_characters_and_escape_sequences() -> None:
    assert sanitize("a\x00b\x07c\td\r\n\x1b[31mred\x1b[0m\x9b") == "abc dred"


def test_sanitize_caps_length_with_an_ellipsis() -> None:
    out = sanitize("x" * 5000, 100)
    assert len(out) == 100
    assert out.endswith("…")


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_sanitize_never_lets_a_control_character_through(text: str, cap: int) -> None:
    out = sanitize(text, cap)
    assert len(out) <= cap
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in out)


def test_kmsg_record_with_continuation_lines() -> None:
    rec = parse_kmsg("6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net\n DEVICE=n1\n")
    assert rec is not None
    assert (rec.facility, rec.level, rec.seq, rec.usec, rec.flags) == (0, 6, 339, 5140900, "-")
    assert rec.message == "NET: Registered protocol family 10"
    assert dict(rec.fields) == {"SUBSYSTEM": "net", "DEVICE": "n1"}


def test_kmsg_facility_and_level_come_from_the_priority() -> None:
    # A message written to /dev/kmsg from user space: facility user (1), level notice (5) -> 13.
    rec = parse_kmsg("13,1,2,c,extra;hello")
    assert rec is not None
    assert (rec.facility, rec.level, rec.flags) == (1, 5, "c")


def test_kmsg_malformed_records_are_none() -> None:
    for text in ("", "no semicolon", "6,1;short header", "x,1,2,-;bad prio", "6,-1,2,-;neg"):
        assert parse_kmsg(text) is None


def test_split_kmsg_joins_continuations_and_keeps_the_unfinished_line() -> None:
    records, rest = split_kmsg("6,1,10,-;first\n SUBSYSTEM=pci\n6,2,20,-;second\n6,3,3")
    assert records == ["6,1,10,-;first\n SUBSYSTEM=pci", "6,2,20,-;second"]
    assert rest == "6,3,3"


@given(
    st.integers(0, 191),
    st.integers(0, 2**63),
    st.integers(0, 2**63),
    st.sampled_from("-c+"),
    st.text(alphabet=st.characters(blacklist_characters="\n", blacklist_categories=SURROGATES)),
    st.dictionaries(
        st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=10),
        st.text(
            alphabet=string.printable.replace("\n", "")
            .replace("\r", "")
            .replace("\x0b", "")
            .replace("\x0c", "")
        ),
        max_size=3,
    ),
)
def test_kmsg_round_trip(
    prio: int, seq: int, usec: int, flag: str, message: str, fields: dict[str, str]
) -> None:
    text = f"{prio},{seq},{usec},{flag};{message}" + "".join(f"\n {k}={v}" for k, v in fields.items())
    records, rest = split_kmsg(text + "\n")
    assert rest == ""
    assert len(records) == 1
    rec = parse_kmsg(records[0])
    assert rec is not None
    assert (rec.facility, rec.level, rec.seq, rec.usec, rec.flags) == (prio >> 3, prio & 7, seq, usec, flag)
    assert rec.message == message
    assert dict(rec.fields) == fields


@given(st.text())
def test_kmsg_parsers_never_raise_on_random_text(text: str) -> None:
    records, _ = split_kmsg(text)
    for record in records:
        parse_kmsg(record)
    parse_kmsg(text)
    parse_dmesg_raw(text)


def test_dmesg_raw_line() -> None:
    rec = parse_dmesg_raw("<3>[  123.456789] Out of memory: Killed process 1 (x)")
    assert rec is not None
    assert (rec.level, rec.usec, rec.message) == (3, 123_456_789, "Out of memory: Killed process 1 (x)")
    assert parse_dmesg_raw("[  1.0] no priority") is None


def test_journal_entry_fields() -> None:
    line = json.dumps(
        {
            "__CURSOR": "s=abc;i=1",
            "__REALTIME_TIMESTAMP": "1763781462123456",
            "MESSAGE": "Out of memory: Killed process 4242 (java)",
            "PRIORITY": "3",
            "SYSLOG_IDENTIFIER": "kernel",
            "_TRANSPORT": "kernel",
        }
    )
    entry = parse_journal(line)
    assert entry is not None
    assert entry.message == "Out of memory: Killed process 4242 (java)"
    assert entry.timestamp == 1763781462.123456
    assert (entry.cursor, entry.priority, entry.identifier, entry.transport) == (
        "s=abc;i=1",
        3,
        "kernel",
        "kernel",
    )


def test_journal_binary_message_is_decoded_and_junk_is_none() -> None:
    entry = parse_journal(json.dumps({"MESSAGE": list(b"caf\xc3\xa9 \xff")}))
    assert entry is not None
    assert entry.message == "café \ufffd"
    for junk in ("", "not json", "[1,2]", '{"MESSAGE": null}', '{"MESSAGE": 5}', '{"OTHER": "x"}'):
        assert parse_journal(junk) is None


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["MESSAGE", "__CURSOR", "PRIORITY", "__REALTIME_TIMESTAMP", "_TRANSPORT", "x"]),
        _json_values,
    )
)
def test_journal_parser_never_raises_and_keeps_string_messages(data: dict[str, object]) -> None:
    entry = parse_journal(json.dumps(data))
    if isinstance(data.get("MESSAGE"), str):
        assert entry is not None
        assert entry.message == data["MESSAGE"]


@given(st.binary())
def test_journal_parser_never_raises_on_random_bytes(data: bytes) -> None:
    parse_journal(data)


def test_syslog_headers_are_stripped() -> None:
    assert syslog_message("Nov 22 03:17:42 web-01 kernel: [ 123.456789] Out of memory") == "Out of memory"
    assert syslog_message("Nov  2 03:17:42 web-01 sshd[12]: Accepted") == "Accepted"
    assert syslog_message("2026-11-22T03:17:42.123456+00:00 web-01 kernel: EXT4-fs error") == "EXT4-fs error"
    assert syslog_message("<14>Nov 22 03:17:42 h tag: msg") == "msg"
    assert syslog_message("no header here") == "no header here"


@pytest.mark.parametrize("number", ["²", "٣", "১২", "9" * 5000, "1" * 30, "-1", " 7", "1_0"])
def test_journal_entry_with_a_tricky_number_is_kept_without_it(number: str) -> None:
    """PRIORITY "²" passes isdigit and 5,000 digits make int() raise: the field is dropped, the
    entry (its message) is kept, nothing raises."""
    entry = parse_journal(json.dumps({"MESSAGE": "m", "PRIORITY": number, "__REALTIME_TIMESTAMP": number}))
    assert entry is not None
    assert (entry.message, entry.priority, entry.timestamp) == ("m", None, None)


@pytest.mark.parametrize("number", ["²", "٣", "9" * 5000, "-1", "1_0"])
def test_kmsg_and_dmesg_records_with_a_tricky_number_are_malformed(number: str) -> None:
    assert parse_kmsg(f"{number},1,2,-;msg") is None
    assert parse_kmsg(f"6,{number},2,-;msg") is None
    assert parse_dmesg_raw(f"<{number}>[    1.000000] msg") is None
    assert parse_dmesg_raw(f"<6>[ {number}.000000] msg") is None


@settings(max_examples=300, deadline=None)
@given(tokens(("<6>", "[", "]", ";", "-", "msg", "MESSAGE", "PRIORITY", '"', "{", "}", "c", "\n ")))
def test_log_parsers_never_raise_on_tricky_numbers(text: str) -> None:
    parse_kmsg(text)
    parse_dmesg_raw(text)
    parse_journal(text)
    parse_journal(json.dumps({"MESSAGE": text, "PRIORITY": text, "__REALTIME_TIMESTAMP": text}))
    syslog_message(text)
    split_kmsg(text)
    sanitize(text)
