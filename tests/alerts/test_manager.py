"""The manager's pipeline with an injected clock: dedup, reminders, resolution, inhibition, silences,
routing, rate limiting and grouping (no sleeping: the windows are driven by the clock)."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_sysops.alerts import (
    DEFAULT_DEDUP,
    AlertManager,
    AlertSink,
    ChannelRunner,
    DeliveryPolicy,
    Finding,
    ManagerPolicy,
    Notification,
    Severity,
    SilenceControl,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A channel that keeps what it is sent (a small fake behind the Channel protocol)."""

    def __init__(self, name: str = "rec", min_severity: Severity = Severity.INFO) -> None:
        self.name = name
        self.min_severity = min_severity
        self.matchers: Mapping[str, str] = {}  # none: every alert (as a channel without matchers)
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)

    async def aclose(self) -> None:
        return None


def finding(
    severity: Severity | None,
    rule: str = "cpu.high",
    metric: str = "system.cpu.utilization",
    attributes: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Finding:
    return Finding(
        rule=rule,
        metric=metric,
        attributes=attributes if attributes is not None else {"cpu.mode": "user"},
        severity=severity,
        message="cpu busy" if severity is not None else "cpu back to normal",
        value=0.95,
        threshold=0.9,
        labels=labels or {},
    )


def make_manager(
    clock: Clock, burst: int = 1000, group_window: float = 0.0, reminder: float = 3600.0
) -> AlertManager:
    policy = ManagerPolicy(
        DEFAULT_DEDUP,
        reminder_interval=reminder,
        delivery=DeliveryPolicy(group_window=group_window, burst=burst, refill_seconds=60.0, backoff=0.0),
    )
    return AlertManager("web-1", policy, clock)


def drain(manager: AlertManager, clock: Clock, reevaluate: bool = True) -> dict[str, list[Notification]]:
    """Run the manager's timer, deliver what is due on every channel; return what each channel got."""
    out: dict[str, list[Notification]] = {}
    if reevaluate:
        manager.reevaluate()

    async def pump() -> None:
        for runner in manager.runners:
            channel = runner.channel
            assert isinstance(channel, Recorder)
            before = len(channel.sent)
            await runner.pump()
            out[runner.name] = channel.sent[before:]

    anyio.run(pump)
    return out


def states(notes: list[Notification]) -> list[tuple[str, str]]:
    return [(a.state, a.severity.name) for n in notes for a in n.alerts]


def test_manager_satisfies_the_sink_and_silence_protocols() -> None:
    manager = make_manager(Clock())
    assert isinstance(manager, AlertSink)
    control: SilenceControl = manager  # mypy checks the structural match
    assert control.silences() == []


def test_firing_then_resolved_follows_the_clear() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    manager.submit(finding(Severity.WARNING))
    got = drain(manager, clock)["rec"]
    assert states(got) == [("firing", "WARNING")]
    firing = got[0].alerts[0]
    assert manager.active_alerts()[0].id == firing.id
    clock.advance(30)
    manager.submit(finding(None))
    got = drain(manager, clock)["rec"]
    assert states(got) == [("resolved", "WARNING")]
    resolved = got[0].alerts[0]
    assert resolved.id == firing.id
    assert resolved.ends_at == clock.now
    assert resolved.starts_at == firing.starts_at
    assert manager.active_alerts() == []
    # A clear of something not firing is nothing.
    manager.submit(finding(None))
    assert drain(manager, clock)["rec"] == []


@pytest.mark.parametrize(
    ("severity", "window"),
    [(Severity.INFO, 600), (Severity.WARNING, 300), (Severity.CRITICAL, 60)],
)
def test_dedup_window_per_severity_suppresses_a_flap(severity: Severity, window: float) -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    manager.submit(finding(severity))
    manager.submit(finding(None))
    assert states(drain(manager, clock)["rec"]) == [("firing", severity.name), ("resolved", severity.name)]
    # Fires again inside the window: suppressed; and so is its clearing (nobody was told it fired).
    clock.advance(window - 1)
    manager.submit(finding(severity))
    assert drain(manager, clock)["rec"] == []
    # Still firing once the window has passed: now it is notified.
    clock.advance(2)
    manager.submit(finding(severity))
    assert states(drain(manager, clock)["rec"]) == [("firing", severity.name)]
    assert manager.counts["deduplicated"] == 1


def test_emergency_is_never_deduplicated() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    for _ in range(3):
        manager.submit(finding(Severity.EMERGENCY))
        manager.submit(finding(None))
        clock.advance(1)
    got = states(drain(manager, clock)["rec"])
    assert got == [("firing", "EMERGENCY"), ("resolved", "EMERGENCY")] * 3


def test_repeats_are_suppressed_until_the_reminder_interval() -> None:
    clock = Clock()
    manager = make_manager(clock, reminder=600)
    manager.add_channel(Recorder())
    manager.submit(finding(Severity.CRITICAL))
    for _ in range(59):  # a finding every 10 s for 590 s: one notification
        clock.advance(10)
        manager.submit(finding(Severity.CRITICAL))
    assert len(states(drain(manager, clock)["rec"])) == 1
    clock.advance(10)  # 600 s after the first: a reminder
    manager.submit(finding(Severity.CRITICAL))
    assert states(drain(manager, clock)["rec"]) == [("firing", "CRITICAL")]
    assert manager.counts["reminders"] == 1


def test_escalation_is_notified_at_once_and_resolved_carries_the_peak() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    manager.add_channel(Recorder("pager", Severity.CRITICAL))
    manager.submit(finding(Severity.WARNING))
    clock.advance(5)
    manager.submit(finding(Severity.CRITICAL))
    clock.advance(5)
    manager.submit(finding(None))
    got = drain(manager, clock)
    assert states(got["rec"]) == [("firing", "WARNING"), ("firing", "CRITICAL"), ("resolved", "CRITICAL")]
    # The pager never saw the warning, but it gets the critical and its resolution.
    assert states(got["pager"]) == [("firing", "CRITICAL"), ("resolved", "CRITICAL")]


def test_routing_by_min_severity_and_label_matchers() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder("all"))
    manager.add_channel(Recorder("crit", Severity.CRITICAL))
    disk = Recorder("disk")
    disk.matchers = {"metric": "system.disk.*", "team": "storage"}
    manager.add_channel(disk)
    manager.submit(finding(Severity.WARNING, rule="cpu"))
    manager.submit(finding(Severity.CRITICAL, rule="cpu2", attributes={"cpu.mode": "system"}))
    manager.submit(
        finding(Severity.WARNING, rule="disk", metric="system.disk.io", labels={"team": "storage"})
    )
    manager.submit(finding(Severity.WARNING, rule="disk2", metric="system.disk.io", labels={"team": "web"}))
    got = drain(manager, clock)
    assert sorted(a.rule for n in got["all"] for a in n.alerts) == ["cpu", "cpu2", "disk", "disk2"]
    assert [a.rule for n in got["crit"] for a in n.alerts] == ["cpu2"]
    assert [a.rule for n in got["disk"] for a in n.alerts] == ["disk"]


def test_inhibition_critical_suppresses_warning_on_the_same_series_only() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    # Two rules on the same metric and attributes (e.g. a threshold and a baseline detector).
    manager.submit(finding(Severity.CRITICAL, rule="threshold"))
    manager.submit(finding(Severity.WARNING, rule="baseline"))
    # Another series (different attributes) and another metric are not inhibited.
    manager.submit(finding(Severity.WARNING, rule="baseline", attributes={"cpu.mode": "system"}))
    manager.submit(finding(Severity.WARNING, rule="mem", metric="system.memory.utilization"))
    got = drain(manager, clock)["rec"]
    notified = sorted((a.rule, a.metric, dict(a.attributes).get("cpu.mode")) for n in got for a in n.alerts)
    assert notified == [
        ("baseline", "system.cpu.utilization", "system"),
        ("mem", "system.memory.utilization", "user"),
        ("threshold", "system.cpu.utilization", "user"),
    ]
    assert manager.counts["inhibited"] == 1
    # Once the critical clears, the warning still firing gets through.
    manager.submit(finding(None, rule="threshold"))
    clock.advance(10)
    manager.submit(finding(Severity.WARNING, rule="baseline"))
    assert states(drain(manager, clock)["rec"]) == [("resolved", "CRITICAL"), ("firing", "WARNING")]


def test_silences_suppress_matching_alerts_only_and_expire() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    sid = manager.add_silence({"rule": "cpu*", "cpu.mode": "user"}, 300, "maintenance", "ops")
    assert [s["id"] for s in manager.silences()] == [sid]
    assert manager.silences()[0]["created_by"] == "ops"
    manager.submit(finding(Severity.CRITICAL, rule="cpu.high"))
    manager.submit(finding(Severity.CRITICAL, rule="cpu.high", attributes={"cpu.mode": "system"}))
    manager.submit(finding(Severity.CRITICAL, rule="mem.high", metric="system.memory.utilization"))
    got = drain(manager, clock)["rec"]
    assert sorted((a.rule, a.attributes["cpu.mode"]) for n in got for a in n.alerts) == [
        ("cpu.high", "system"),
        ("mem.high", "user"),
    ]
    assert manager.counts["silenced"] == 1
    # The silenced alert is still active (visible to the control plane) ...
    assert len(manager.active_alerts()) == 3
    # ... and once the silence expires, a still-firing alert is notified.
    clock.advance(301)
    assert manager.silences() == []
    manager.submit(finding(Severity.CRITICAL, rule="cpu.high"))
    assert [a.rule for n in drain(manager, clock)["rec"] for a in n.alerts] == ["cpu.high"]


def test_removed_silence_stops_suppressing() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    sid = manager.add_silence({"host": "web-1"}, 3600)
    manager.submit(finding(Severity.WARNING))
    assert drain(manager, clock)["rec"] == []
    assert manager.remove_silence(sid) is True
    assert manager.remove_silence(sid) is False
    clock.advance(10)
    manager.submit(finding(Severity.WARNING))
    assert states(drain(manager, clock)["rec"]) == [("firing", "WARNING")]
    with pytest.raises(ValueError, match="matcher"):
        manager.add_silence({}, 60)


def test_grouping_one_message_per_host_per_window() -> None:
    clock = Clock()
    manager = make_manager(clock, group_window=2.0)
    rec = Recorder()
    manager.add_channel(rec)
    for i in range(5):
        manager.submit(finding(Severity.WARNING, rule=f"r{i}"))
        clock.advance(0.1)
    assert drain(manager, clock)["rec"] == []  # the window is still open
    clock.advance(2.0)
    got = drain(manager, clock)["rec"]
    assert len(got) == 1
    assert [a.rule for a in got[0].alerts] == [f"r{i}" for i in range(5)]


def test_rate_limit_overflow_is_counted_in_the_next_message() -> None:
    clock = Clock()
    manager = make_manager(clock, burst=2, group_window=1.0)
    manager.add_channel(Recorder())
    sent: list[Notification] = []
    total = 0
    for batch in range(5):  # five groups, one per window; only two tokens
        for i in range(3):
            manager.submit(finding(Severity.CRITICAL, rule=f"b{batch}r{i}"))
            total += 1
        clock.advance(1.0)
        sent += drain(manager, clock)["rec"]
    assert len(sent) == 2
    assert sum(len(n.alerts) for n in sent) == 6
    # One token back after 60 s: a summary of the 9 held back goes out on its own.
    clock.advance(60)
    sent += drain(manager, clock)["rec"]
    assert len(sent) == 3
    assert sent[2].alerts == []
    assert sent[2].suppressed == {"critical": 9}
    assert sum(len(n.alerts) + sum(n.suppressed.values()) for n in sent) == total


def test_storm_of_1000_alerts_in_one_second_is_bounded_and_accounted() -> None:
    clock = Clock()
    manager = make_manager(clock, burst=10, group_window=2.0)
    manager.add_channel(Recorder())
    sent: list[Notification] = []
    severities = [Severity.INFO, Severity.WARNING, Severity.CRITICAL, Severity.EMERGENCY]
    for i in range(1000):  # 1,000 distinct series in one second, across 4 hosts' worth of labels
        manager.submit(finding(severities[i % 4], rule=f"r{i}", attributes={"i": str(i)}))
        clock.advance(0.001)
        sent += drain(manager, clock)["rec"]
    for _ in range(15):  # the next 15 minutes
        clock.advance(60)
        sent += drain(manager, clock)["rec"]
    assert 1 <= len(sent) <= 10
    listed = sum(len(n.alerts) for n in sent)
    summarised = sum(sum(n.suppressed.values()) for n in sent)
    assert listed + summarised == 1000
    assert manager.counts["notified"] == 1000


def test_storm_beyond_the_burst_summarises_the_rest() -> None:
    # Grouping off: every alert would be its own message; the bucket lets 10 through.
    clock = Clock()
    manager = make_manager(clock, burst=10, group_window=0.0)
    manager.add_channel(Recorder())
    sent: list[Notification] = []
    for i in range(1000):
        manager.submit(finding(Severity.WARNING, rule=f"r{i}"))
        clock.advance(0.001)
        sent += drain(manager, clock)["rec"]
    assert len(sent) == 10
    clock.advance(60)
    sent += drain(manager, clock)["rec"]
    assert len(sent) == 11
    assert sent[-1].suppressed == {"warning": 990}
    assert sum(len(n.alerts) + sum(n.suppressed.values()) for n in sent) == 1000


def test_queue_overflow_is_counted_not_lost() -> None:
    clock = Clock()
    policy = ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(group_window=5.0, queue_size=10))
    manager = AlertManager("web-1", policy, clock)
    runner = manager.add_channel(Recorder())
    for i in range(25):
        manager.submit(finding(Severity.WARNING, rule=f"r{i}"))
    assert runner.pending() == 10
    clock.advance(5)
    got = drain(manager, clock)["rec"]
    assert len(got[0].alerts) == 10
    assert got[0].suppressed == {"warning": 15}


def test_add_channel_names_are_unique() -> None:
    manager = make_manager(Clock())
    manager.add_channel(Recorder("a"))
    with pytest.raises(ValueError, match="already exists"):
        manager.add_channel(Recorder("a"))


def test_runner_next_due_follows_window_and_tokens() -> None:
    clock = Clock()
    runner = ChannelRunner(
        Recorder(), DeliveryPolicy(group_window=2.0, burst=1, refill_seconds=60), 1.0, clock
    )
    assert runner.next_due(clock()) is None
    manager = make_manager(clock)
    alert_source = manager  # build one alert through the manager's state machine
    alert_source.add_channel(Recorder("x"))
    alert_source.submit(finding(Severity.WARNING))
    alert = alert_source.active_alerts()[0]
    runner.enqueue(alert, clock())
    assert runner.next_due(clock()) == pytest.approx(2.0)


_fingerprints = st.sampled_from(["a", "b", "c"])
_severities = st.sampled_from([None, Severity.INFO, Severity.WARNING, Severity.CRITICAL, Severity.EMERGENCY])
_steps = st.lists(st.tuples(_fingerprints, _severities, st.floats(0, 400)), max_size=60)


def simulate(
    steps: list[tuple[str, Severity | None, float]], burst: int
) -> tuple[list[Notification], AlertManager]:
    clock = Clock()
    manager = make_manager(clock, burst=burst, group_window=30.0, reminder=0)
    manager.add_channel(Recorder())
    sent: list[Notification] = []
    for rule, severity, advance in steps:
        manager.submit(finding(severity, rule=rule))
        clock.advance(advance)
        sent += drain(manager, clock)["rec"]
    clock.advance(3000)  # past every dedup window (reminders off)
    for _ in range(10):  # let the bucket refill so every summary can go out
        clock.advance(60)
        sent += drain(manager, clock)["rec"]
    return sent, manager


@settings(max_examples=150, deadline=None)
@given(steps=_steps, burst=st.integers(1, 5))
def test_every_alert_is_listed_or_counted(
    steps: list[tuple[str, Severity | None, float]], burst: int
) -> None:
    sent, manager = simulate(steps, burst)
    listed = sum(len(n.alerts) for n in sent)
    counted = sum(sum(n.suppressed.values()) for n in sent)
    assert listed + counted == manager.counts["notified"] + manager.counts["resolved"]


@settings(max_examples=150, deadline=None)
@given(steps=_steps)
def test_what_a_person_last_heard_matches_the_state(steps: list[tuple[str, Severity | None, float]]) -> None:
    sent, manager = simulate(steps, burst=1000)
    heard: dict[str, tuple[str, Severity]] = {}
    firing_ids: set[str] = set()
    for alert in [a for n in sent for a in n.alerts]:
        if alert.state == "resolved":
            # A resolution only follows a firing that was notified, with the same id.
            assert alert.id in firing_ids
        else:
            firing_ids.add(alert.id)
        heard[alert.fingerprint] = (alert.state, alert.severity)
    active = manager.active_alerts()
    for alert in active:
        inhibited = any(o.severity >= Severity.CRITICAL and o.severity > alert.severity for o in active)
        if not inhibited:
            # Once every window has passed, each firing, uninhibited alert was notified at its severity.
            assert heard.get(alert.fingerprint) == ("firing", alert.severity)
    for fingerprint, (state, _) in heard.items():
        if fingerprint not in {a.fingerprint for a in active}:
            assert state == "resolved"


def test_flap_refire_is_notified_when_the_window_ends_without_a_new_finding() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.add_channel(Recorder())
    manager.submit(finding(Severity.WARNING))
    manager.submit(finding(None))
    manager.submit(finding(Severity.WARNING))  # suppressed: inside the 300 s window
    assert states(drain(manager, clock)["rec"]) == [("firing", "WARNING"), ("resolved", "WARNING")]
    clock.advance(299)
    assert drain(manager, clock)["rec"] == []
    clock.advance(2)
    # No new finding (an analyzer that reports changes only): the timer notifies it.
    assert states(drain(manager, clock)["rec"]) == [("firing", "WARNING")]


def test_reminders_and_expired_silences_need_no_new_finding() -> None:
    clock = Clock()
    manager = make_manager(clock, reminder=600)
    manager.add_channel(Recorder())
    manager.add_silence({"rule": "mem"}, 120)
    manager.submit(finding(Severity.CRITICAL))
    manager.submit(finding(Severity.CRITICAL, rule="mem", metric="system.memory.utilization"))
    assert [a.rule for n in drain(manager, clock)["rec"] for a in n.alerts] == ["cpu.high"]
    clock.advance(121)
    assert [a.rule for n in drain(manager, clock)["rec"] for a in n.alerts] == ["mem"]
    clock.advance(480)  # 601 s after the first: its reminder
    assert [a.rule for n in drain(manager, clock)["rec"] for a in n.alerts] == ["cpu.high"]
    assert manager.counts["reminders"] == 1


class MachineRecorder(Recorder):
    """A machine channel (NATS, webhook): it declares it must not be rate-limited."""

    rate_limited = False


def test_a_machine_channel_gets_every_alert_while_a_chat_channel_is_limited() -> None:
    # 25 distinct alerts 1.5 s apart: the chat channel's bucket (10, then 1/min) holds some back,
    # the machine channel next to it is told of all 25, each in its own message.
    clock = Clock()
    manager = make_manager(clock, burst=10, group_window=0.0)
    manager.add_channel(Recorder("chat"))
    manager.add_channel(MachineRecorder("machine"))
    got: dict[str, list[Notification]] = {"chat": [], "machine": []}
    for i in range(25):
        manager.submit(finding(Severity.CRITICAL, rule=f"oom{i}"))
        for name, notes in drain(manager, clock).items():
            got[name] += notes
        clock.advance(1.5)
    machine = [a.rule for n in got["machine"] for a in n.alerts]
    assert machine == [f"oom{i}" for i in range(25)]
    assert all(not n.suppressed for n in got["machine"])
    chat_listed = sum(len(n.alerts) for n in got["chat"])
    assert 10 <= chat_listed < 25
    clock.advance(60)
    got["chat"] += drain(manager, clock)["chat"]
    held = sum(sum(n.suppressed.values()) for n in got["chat"])
    assert chat_listed + held == 25  # what the chat channel did not get is summarised to it


def test_the_active_set_is_bounded_and_what_is_dropped_is_counted() -> None:
    clock = Clock()
    policy = ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(group_window=0.0), max_active=5)
    manager = AlertManager("web-1", policy, clock)
    manager.add_channel(Recorder())
    for i in range(12):
        manager.submit(finding(Severity.WARNING, rule=f"r{i}"))
    assert len(manager.active_alerts()) == 5
    assert manager.counts_snapshot()["dropped"] == 7
    # A firing alert still updates, and a resolved one frees its place.
    manager.submit(finding(Severity.CRITICAL, rule="r0"))
    manager.submit(finding(None, rule="r1"))
    manager.submit(finding(Severity.WARNING, rule="r99"))
    assert {a.rule for a in manager.active_alerts()} == {"r0", "r2", "r3", "r4", "r99"}
    assert manager.counts_snapshot()["dropped"] == 7


def test_by_default_at_most_10000_alerts_fire_at_once_and_the_rest_are_counted() -> None:
    # The documented default bound (no policy argument): a storm of distinct findings does not grow
    # the manager's state without limit; what is refused is counted as outcome "dropped".
    clock = Clock()
    manager = AlertManager(
        "web-1", ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(group_window=0.0)), clock
    )
    manager.add_channel(Recorder())
    for i in range(10_025):
        manager.submit(finding(Severity.WARNING, rule=f"r{i}"))
    assert len(manager.active_alerts()) == 10_000
    assert manager.counts["dropped"] == 25


def test_run_time_silences_are_bounded_and_a_refusal_says_why() -> None:
    clock = Clock()
    manager = make_manager(clock)
    manager.silence_book.max_silences = 3
    for i in range(3):
        manager.add_silence({"rule": f"r{i}"}, 60)
    with pytest.raises(ValueError, match=r"too many silences in force \(3\)"):
        manager.add_silence({"rule": "r3"}, 60)
    assert manager.silence_book.refused == 1
    clock.advance(61)  # expired ones make room
    manager.add_silence({"rule": "r4"}, 60)
    assert [s["matchers"] for s in manager.silences()] == [{"rule": "r4"}]
