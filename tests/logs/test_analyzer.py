"""From matched lines to findings: dedup key, counts, throttling, clearing, cross-source duplicates."""

from __future__ import annotations

from typing import TypedDict, Unpack

import pytest

from otel_sysops.alerts import Severity
from otel_sysops.errors import ConfigError
from otel_sysops.logs import LogAnalyzer, Matcher, builtin_patterns
from otel_sysops.settings import load_settings

from .helpers import FakeClock, RecordingSink

OOM = "Out of memory: Killed process {pid} ({name}) total-vm:8123456kB, anon-rss:1kB"


class AnalyzerOptions(TypedDict, total=False):
    """The LogAnalyzer keywords the tests vary."""

    resolve_after: float
    resubmit_after: float
    max_line: int


def _analyzer(**kwargs: Unpack[AnalyzerOptions]) -> tuple[LogAnalyzer, RecordingSink, FakeClock]:
    sink, clock = RecordingSink(), FakeClock()
    return LogAnalyzer(Matcher(builtin_patterns()), sink, clock=clock, **kwargs), sink, clock


def test_oom_kill_becomes_a_finding_keyed_by_victim_not_pid() -> None:
    analyzer, sink, clock = _analyzer(resubmit_after=60.0)
    analyzer.feed("kmsg", [OOM.format(pid=4242, name="java")], timestamp=1234.5)
    (first,) = sink.findings
    assert first.rule == "log.oom_kill"
    assert first.metric == "sysops.log.matches"
    assert dict(first.attributes) == {"sysops.log.pattern": "oom_kill", "process.executable.name": "java"}
    assert first.severity == Severity.CRITICAL
    assert first.message == "OOM killer killed java (pid 4242)"
    assert first.timestamp == 1234.5
    assert first.event
    assert first.value == 1.0
    assert first.labels["log.record.original"] == OOM.format(pid=4242, name="java")
    assert first.labels["sysops.log.source"] == "kmsg"

    # Another java killed soon after: same alert (fingerprint), counted, not resubmitted yet.
    analyzer.feed("kmsg", [OOM.format(pid=4243, name="java")])
    assert len(sink.findings) == 1
    clock.now += 61
    analyzer.feed("kmsg", [OOM.format(pid=4244, name="java")])
    assert len(sink.findings) == 2
    assert sink.findings[1].fingerprint == first.fingerprint
    assert sink.findings[1].value == 3.0

    analyzer.feed("kmsg", [OOM.format(pid=7, name="postgres")])
    assert sink.victims() == ["java", "java", "postgres"]
    assert sink.findings[2].fingerprint != first.fingerprint
    assert analyzer.stats.matches["oom_kill"] == 4


def test_events_resolve_after_a_quiet_period() -> None:
    analyzer, sink, clock = _analyzer(resolve_after=300.0)
    analyzer.feed("kmsg", [OOM.format(pid=1, name="java")])
    clock.now += 200
    analyzer.feed("kmsg", [OOM.format(pid=2, name="java")])
    clock.now += 200
    assert analyzer.expire() == 0  # the second kill restarted the quiet period
    clock.now += 101
    assert analyzer.expire() == 1
    cleared = sink.findings[-1]
    assert cleared.severity is None
    assert cleared.event
    assert cleared.fingerprint == sink.findings[0].fingerprint
    assert analyzer.firing() == {}
    # The next kill fires again.
    analyzer.feed("kmsg", [OOM.format(pid=3, name="java")])
    assert sink.findings[-1].severity == Severity.CRITICAL


def test_resolve_after_zero_is_floored_so_every_log_alert_resolves() -> None:
    analyzer, sink, clock = _analyzer(resolve_after=0.0)
    analyzer.feed("kmsg", [OOM.format(pid=1, name="java")])
    clock.now += 1.0
    assert analyzer.expire() == 1
    assert sink.findings[-1].severity is None
    assert analyzer.firing() == {}


def test_resolve_after_below_one_second_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="RESOLVE_AFTER"):
        load_settings(None, None, environ={"SYSOPS_LOGS__RESOLVE_AFTER": "0"})


def test_the_firing_set_is_bounded_and_the_quietest_is_resolved_and_counted() -> None:
    sink, clock = RecordingSink(), FakeClock()
    analyzer = LogAnalyzer(Matcher(builtin_patterns()), sink, clock=clock, max_firing=3)
    for i in range(5):
        analyzer.feed("kmsg", [OOM.format(pid=i, name=f"prog{i}")])
        clock.now += 1
    assert len(analyzer.firing()) == 3
    victims = {f.attributes["process.executable.name"] for f in analyzer.firing().values()}
    assert victims == {"prog2", "prog3", "prog4"}
    resolved = [f for f in sink.findings if f.severity is None]
    assert [f.fingerprint for f in resolved] == [sink.findings[0].fingerprint, sink.findings[1].fingerprint]
    assert "too many log alerts firing" in resolved[0].message
    assert analyzer.stats.errors[("analyzer", "firing_overflow")] == 2


def test_past_the_default_bound_the_quietest_log_alert_is_resolved_not_forgotten() -> None:
    # With the default bound: a log alert pushed out of the firing set is sent as resolved, so the
    # alert manager (and every channel) does not keep it firing forever.
    from otel_sysops.logs._analyzer import MAX_FIRING

    analyzer, sink, _ = _analyzer()
    analyzer.feed("kmsg", [OOM.format(pid=i, name=f"prog{i}") for i in range(MAX_FIRING + 2)])
    assert len(analyzer.firing()) == MAX_FIRING
    resolved = [f for f in sink.findings if f.severity is None]
    assert [f.attributes["process.executable.name"] for f in resolved] == ["prog0", "prog1"]
    assert {f.fingerprint for f in resolved} == {f.fingerprint for f in sink.findings[:2]}


def test_link_up_clears_link_down_only_when_it_was_firing() -> None:
    analyzer, sink, _ = _analyzer()
    analyzer.feed("kmsg", ["igb 0000:03:00.0 eno1: NIC Link is Up 1000 Mbps"])
    assert sink.findings == []
    analyzer.feed("kmsg", ["igb 0000:03:00.0 eno1: NIC Link is Down"])
    analyzer.feed("kmsg", ["igb 0000:03:00.0 eno1: NIC Link is Up 1000 Mbps"])
    down, up = sink.findings
    assert down.severity == Severity.WARNING
    assert not down.event
    assert up.severity is None
    assert up.fingerprint == down.fingerprint


def test_the_same_kernel_line_from_two_sources_counts_once() -> None:
    analyzer, sink, clock = _analyzer(resubmit_after=0.0)
    line = OOM.format(pid=4242, name="java")
    analyzer.feed("kmsg", [line])
    analyzer.feed(
        "file", [f"Nov 22 03:17:42 web-01 kernel: [ 5.1] {line}"], path="/var/log/syslog", syslog=True
    )
    analyzer.feed("journal", [line])
    assert analyzer.stats.matches["oom_kill"] == 1
    assert len(sink.findings) == 1
    # The same line again from the same source is a new event (e.g. conntrack full, repeated).
    analyzer.feed("kmsg", [line])
    assert analyzer.stats.matches["oom_kill"] == 2
    # Outside the window, another source's copy is not taken for a duplicate.
    clock.now += 31
    analyzer.feed("journal", [line])
    assert analyzer.stats.matches["oom_kill"] == 3


def test_lines_are_sanitised_before_they_reach_a_finding() -> None:
    analyzer, sink, _ = _analyzer(max_line=100)
    analyzer.feed("kmsg", ["Out of memory: Killed process 1 (ev\x1b[31mil\x07) total-vm:" + "x" * 500])
    (finding,) = sink.findings
    original = finding.labels["log.record.original"]
    assert len(original) <= 100
    assert "\x1b" not in original
    assert "\x07" not in original
    assert "\x07" not in finding.message
    assert "\x07" not in finding.attributes["process.executable.name"]


def test_lines_are_counted_by_source() -> None:
    analyzer, _, _ = _analyzer()
    analyzer.feed("file", ["a", "b", "c"], path="/var/log/syslog", syslog=True)
    analyzer.feed("kmsg", ["d"])
    lines, matches, _ = analyzer.stats.snapshot()
    assert lines == {("file", "/var/log/syslog"): 3, ("kmsg", ""): 1}
    assert set(matches) == {p.name for p in builtin_patterns()}
    assert sum(matches.values()) == 0
