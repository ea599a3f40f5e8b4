"""The alert manager: findings in, deduplicated, inhibited, silenced, routed, rate-limited, grouped."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.abc

from ._delivery import ChannelRunner, Clock, DeliveryPolicy
from ._matchers import SilenceBook, matches
from ._observe import AlertChange, AlertObserver
from .channel import Alert, Channel, Notification
from .model import Finding, Severity

_log = logging.getLogger("otel_sysops.alerts")

DEFAULT_DEDUP = {
    Severity.EMERGENCY: 0.0,
    Severity.CRITICAL: 60.0,
    Severity.WARNING: 300.0,
    Severity.INFO: 600.0,
}


@dataclass(frozen=True, slots=True)
class ManagerPolicy:
    """The manager's windows: dedup per severity, reminders, and the per-channel delivery policy."""

    dedup: Mapping[Severity, float]
    reminder_interval: float = 3600.0
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    # Fingerprints firing at once; a new one past this is dropped and counted (outcome "dropped").
    max_active: int = 10_000


@dataclass(slots=True)
class _Active:
    """A fingerprint firing now."""

    alert: Alert
    # Notified at the current severity.
    notified: bool = False
    last_notified: float = 0.0
    # The highest severity notified in this episode (None: never notified); the resolved alert carries
    # it, so it reaches every channel that was told about the firing.
    told: Severity | None = None


InhibitionKey = tuple[str, str, tuple[tuple[str, str], ...]]


def inhibition_key(alert: Alert) -> InhibitionKey:
    """Return what "the same" means for inhibition: host, metric and attributes (any rule)."""
    return (alert.host, alert.metric, tuple(sorted(alert.attributes.items())))


class AlertManager:
    """Turn findings into notifications; an `AlertSink`, a `SilenceControl` and an agent `Service`.

    `submit` only updates state and queues: delivery happens on each channel's own task.
    """

    name = "alerts"

    def __init__(
        self,
        host: str,
        policy: ManagerPolicy | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.host = host
        self.policy = policy or ManagerPolicy(DEFAULT_DEDUP)
        self.clock = clock
        self.silence_book = SilenceBook()
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        # (fingerprint, severity) -> when a firing notification last went out.
        self._last_sent: dict[tuple[str, Severity], float] = {}
        # Inhibition index: series key -> {fingerprint: severity} of active critical/emergency alerts.
        self._inhibitors: dict[InhibitionKey, dict[str, Severity]] = {}
        self._next_sweep = 0.0
        self._runners: list[ChannelRunner] = []
        self._tg: anyio.abc.TaskGroup | None = None
        self._observers: list[AlertObserver] = []

    # -- channels ----------------------------------------------------------------------------

    @property
    def runners(self) -> list[ChannelRunner]:
        """Return the channel runners (a copy)."""
        with self._lock:
            return list(self._runners)

    def add_channel(self, channel: Channel, timeout: float = 10.0, origin: object = None) -> ChannelRunner:
        """Add a channel now; while the manager runs its delivery task starts at once (call on the loop)."""
        runner = ChannelRunner(channel, self.policy.delivery, timeout, self.clock, origin)
        runner.on_outcome = self._outcome
        with self._lock:
            if any(r.name == channel.name for r in self._runners):
                raise ValueError(f"a channel named {channel.name!r} already exists")
            self._runners.append(runner)
        if self._tg is not None:
            self._tg.start_soon(runner.run)
        return runner

    def set_policy(self, policy: ManagerPolicy) -> None:
        """Apply new windows and delivery limits; queues, tokens spent and breaker states are kept."""
        with self._lock:
            self.policy = policy
            for runner in self._runners:
                runner.set_policy(policy.delivery)

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> bool:
        """Start a task in the manager's task group (on the loop); return False when not running."""
        if self._tg is None:
            return False
        self._tg.start_soon(func, *args)
        return True

    async def remove_channel(self, name: str, timeout: float = 5.0) -> bool:
        """Flush and close a channel, then forget it; return whether it existed."""
        with self._lock:
            runner = next((r for r in self._runners if r.name == name), None)
            if runner is None:
                return False
            self._runners.remove(runner)
        await runner.close(timeout)
        return True

    # -- AlertSink ---------------------------------------------------------------------------

    def submit(self, finding: Finding) -> None:
        """Take one finding from any thread; queue what must be notified and return."""
        now = self.clock()
        with self._lock:
            before = self._active.get(finding.fingerprint)
            previous = before.alert if before is not None else None
            alert = self._ingest(finding, now)
            after = self._active.get(finding.fingerprint)
            runners = list(self._runners)
        if alert is not None:
            self._route(alert, runners, now)
        if self._observers:
            change = _change(previous, after.alert if after is not None else None, finding, now)
            if change is not None:
                self._tell(lambda o: o.alert_changed(change))

    # -- observers (history, live events) ------------------------------------------------------

    def add_observer(self, observer: AlertObserver) -> None:
        """Tell `observer` about every alert change and every delivery outcome from now on."""
        self._observers = [*self._observers, observer]

    def remove_observer(self, observer: AlertObserver) -> None:
        """Stop telling `observer`."""
        self._observers = [o for o in self._observers if o is not observer]

    def _outcome(self, channel: str, notification: Notification, error: str | None) -> None:
        if self._observers and not notification.test:
            self._tell(lambda o: o.notification_sent(channel, notification, error))

    def _tell(self, call: Callable[[AlertObserver], None]) -> None:
        for observer in self._observers:
            try:
                call(observer)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop alerting
                _log.exception("alert observer %r failed", observer)

    def _route(self, alert: Alert, runners: list[ChannelRunner], now: float) -> None:
        for runner in runners:
            if alert.severity >= runner.channel.min_severity and matches(_matchers_of(runner), alert):
                runner.enqueue(alert, now)

    def reevaluate(self) -> int:
        """Notify held alerts whose reason has passed; send due reminders; return how many went out.

        A firing alert held back by a dedup window, a silence or an inhibition, or due a reminder,
        is notified without waiting for its next finding (analyzers may report only changes).
        """
        now = self.clock()
        interval = self.policy.reminder_interval
        out: list[Alert] = []
        with self._lock:
            for active in self._active.values():
                if active.notified and (interval <= 0 or now - active.last_notified < interval):
                    continue
                alert = self._decide(active, now, count=False)
                if alert is not None:
                    out.append(alert)
            runners = list(self._runners)
        for alert in out:
            self._route(alert, runners, now)
        return len(out)

    def _ingest(self, finding: Finding, now: float) -> Alert | None:
        """Update the state for one finding; return the alert to notify, if any (lock held)."""
        if finding.severity is None:
            return self._clear(finding, now)
        if finding.fingerprint not in self._active and len(self._active) >= self.policy.max_active:
            # Bounded memory: a storm of ever-new fingerprints cannot grow the state without end.
            if not self.counts["dropped"]:
                _log.warning(
                    "more than %d alerts firing at once: new ones are dropped (counted as dropped)",
                    self.policy.max_active,
                )
            self.counts["dropped"] += 1
            return None
        return self._decide(self._update(finding, finding.severity, now), now, count=True)

    def _decide(self, active: _Active, now: float, count: bool) -> Alert | None:
        """Return the alert if it is to be notified now, marking it so; else None (lock held)."""
        reason = self._hold_reason(active, now)
        if reason is not None:
            if count:
                self.counts[reason] += 1
            return None
        if active.notified:
            self.counts["reminders"] += 1
        active.notified = True
        active.last_notified = now
        active.told = max(active.told or active.alert.severity, active.alert.severity)
        self._last_sent[(active.alert.fingerprint, active.alert.severity)] = now
        self._forget_old(now)
        self.counts["notified"] += 1
        return active.alert

    def _clear(self, finding: Finding, now: float) -> Alert | None:
        """Forget a cleared fingerprint; return its resolved alert if its firing was notified."""
        active = self._active.pop(finding.fingerprint, None)
        if active is None:
            return None
        self._index(active.alert, None)
        if active.told is None:
            # Nobody was told it fired (silenced, inhibited, deduplicated): nobody is told it resolved.
            self.counts["resolved_unnotified"] += 1
            return None
        self.counts["resolved"] += 1
        return replace(
            active.alert,
            severity=active.told,
            state="resolved",
            ends_at=finding.timestamp or now,
            value=finding.value,
            message=finding.message,
        )

    def _update(self, finding: Finding, severity: Severity, now: float) -> _Active:
        """Record a firing finding: a new alert, a severity change, or fresh values of the same one."""
        fp = finding.fingerprint
        active = self._active.get(fp)
        if active is not None and active.alert.severity == severity:
            active.alert = replace(
                active.alert, value=finding.value, message=finding.message, threshold=finding.threshold
            )
            return active
        alert = Alert(
            id=active.alert.id if active else uuid.uuid4().hex,
            fingerprint=fp,
            rule=finding.rule,
            metric=finding.metric,
            attributes=dict(finding.attributes),
            severity=severity,
            state="firing",
            starts_at=active.alert.starts_at if active else (finding.timestamp or now),
            message=finding.message,
            host=self.host,
            value=finding.value,
            threshold=finding.threshold,
            labels=dict(finding.labels),
        )
        self._index(alert, alert.severity)
        active = _Active(alert, told=active.told if active else None)
        self._active[fp] = active
        return active

    def _index(self, alert: Alert, severity: Severity | None) -> None:
        """Record (or forget, severity None or below critical) an alert as a potential inhibitor."""
        key = inhibition_key(alert)
        entry = self._inhibitors.get(key)
        if severity is not None and severity >= Severity.CRITICAL:
            self._inhibitors.setdefault(key, {})[alert.fingerprint] = severity
        elif entry is not None:
            entry.pop(alert.fingerprint, None)
            if not entry:
                del self._inhibitors[key]

    def _hold_reason(self, active: _Active, now: float) -> str | None:
        """Return why a firing alert is not notified now (silenced, inhibited, deduplicated), or None."""
        alert = active.alert
        if self.silence_book.silencing(alert, now) is not None:
            return "silenced"
        if self._inhibited(alert):
            return "inhibited"
        if active.notified:
            interval = self.policy.reminder_interval
            if interval <= 0 or now - active.last_notified < interval:
                return "deduplicated"
            return None
        last = self._last_sent.get((alert.fingerprint, alert.severity))
        window = self.policy.dedup.get(alert.severity, 0.0)
        if last is not None and window > 0 and now - last < window:
            return "deduplicated"
        return None

    def _inhibited(self, alert: Alert) -> bool:
        # A critical (or emergency) alert on the same host, metric and attributes inhibits lower ones.
        if alert.severity >= Severity.CRITICAL:
            return False
        if not self._inhibitors:
            return False
        entry = self._inhibitors.get(inhibition_key(alert), {})
        return any(severity > alert.severity for severity in entry.values())

    def _forget_old(self, now: float) -> None:
        # Bound the dedup memory: entries older than the longest window can no longer suppress anything.
        # Swept at most once a minute, so a storm does not pay for a scan per alert.
        if len(self._last_sent) > 4 * self.policy.max_active:
            # A hard bound whatever the windows: the oldest half goes (it can only shorten a window).
            for key, _ in sorted(self._last_sent.items(), key=lambda kv: kv[1])[: len(self._last_sent) // 2]:
                del self._last_sent[key]
        if len(self._last_sent) < 4096 or now < self._next_sweep:
            return
        self._next_sweep = now + 60.0
        horizon = max(self.policy.dedup.values(), default=0.0)
        for key in [k for k, t in self._last_sent.items() if now - t >= horizon]:
            del self._last_sent[key]

    def counts_snapshot(self) -> dict[str, int]:
        """Return how many findings ended each way so far (notified, deduplicated, silenced, ...)."""
        with self._lock:
            return dict(self.counts)

    # -- SilenceControl ----------------------------------------------------------------------

    def add_silence(
        self, matchers: Mapping[str, str], duration: float, comment: str = "", created_by: str = ""
    ) -> str:
        """Silence alerts matching every matcher for `duration` seconds; return the silence id."""
        if duration <= 0:
            raise ValueError("a silence needs a positive duration")
        now = self.clock()
        return self.silence_book.add(matchers, now, now + duration, comment, created_by)

    def remove_silence(self, silence_id: str) -> bool:
        """Remove a silence; return whether it existed."""
        return self.silence_book.remove(silence_id)

    def silences(self) -> list[dict[str, Any]]:
        """Return the silences in force."""
        return [s.to_dict() for s in self.silence_book.active(self.clock())]

    def active_alerts(self) -> list[Alert]:
        """Return the alerts firing now (silenced and inhibited ones included)."""
        with self._lock:
            return [a.alert for a in self._active.values()]

    # -- Service -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run every channel's delivery task until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                for runner in self.runners:
                    tg.start_soon(runner.run)
                while True:
                    # Windows are a minute or more and silences are set in seconds: once a second is enough.
                    await anyio.sleep(1.0)
                    self.reevaluate()
            finally:
                self._tg = None

    async def aclose(self, timeout: float) -> None:
        """Flush every channel's pending alerts within `timeout` seconds and close the channels."""
        runners = self.runners
        async with anyio.create_task_group() as tg:
            for runner in runners:
                tg.start_soon(runner.close, timeout)

    async def send_test(self, only: str | None = None) -> dict[str, str | None]:
        """Send a test alert through each channel (or one); return name -> None when delivered, else why."""
        now = self.clock()
        alert = Alert(
            id=uuid.uuid4().hex,
            fingerprint="test",
            rule="sysops.test",
            metric="sysops.test",
            attributes={},
            severity=Severity.INFO,
            state="firing",
            starts_at=now,
            message="test alert from otel-sysops: this channel is configured correctly",
            host=self.host,
        )
        notification = Notification([alert], test=True)
        results: dict[str, str | None] = {}

        async def one(runner: ChannelRunner) -> None:
            before = runner.stats.sent_messages
            await runner.send_now(notification)
            results[runner.name] = None if runner.stats.sent_messages > before else runner.stats.last_error

        async with anyio.create_task_group() as tg:
            for runner in self.runners:
                if only is None or runner.name == only:
                    tg.start_soon(one, runner)
        return results


def _change(
    previous: Alert | None, current: Alert | None, finding: Finding, now: float
) -> AlertChange | None:
    """Return what one finding changed (fired, escalated, resolved), or None for fresh values only."""
    if previous is None:
        return None if current is None else AlertChange("fired", current)
    if current is None:
        resolved = replace(
            previous,
            state="resolved",
            ends_at=finding.timestamp or now,
            value=finding.value,
            message=finding.message,
        )
        return AlertChange("resolved", resolved)
    if current.severity != previous.severity:
        return AlertChange("escalated", current, previous.severity)
    return None


def _matchers_of(runner: ChannelRunner) -> Mapping[str, str]:
    return getattr(runner.origin, "matchers", None) or getattr(runner.channel, "matchers", None) or {}
