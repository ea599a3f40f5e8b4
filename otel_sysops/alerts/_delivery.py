"""Delivery to one channel: its queue, token bucket, grouping, retries and circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from ._errors import ChannelError
from .channel import Alert, Channel, Notification
from .model import Severity

_log = logging.getLogger("otel_sysops.alerts")

Clock = Callable[[], float]


class TokenBucket:
    """`burst` tokens, one more every `refill_seconds`; `take` spends one if there is one."""

    def __init__(self, burst: int, refill_seconds: float, now: float) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) / self.refill_seconds)
        self._at = max(self._at, now)

    def take(self, now: float) -> bool:
        """Spend a token if one is available."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def next_token_in(self, now: float) -> float:
        """Return seconds until a token is available (0 when one is)."""
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) * self.refill_seconds)


class CircuitBreaker:
    """Open after `threshold` failed deliveries in a row; let one trial through after `reset` seconds."""

    def __init__(self, threshold: int, reset: float) -> None:
        self.threshold = threshold
        self.reset = reset
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self, now: float) -> bool:
        """Return whether a delivery may be attempted (closed, or half-open after the reset time)."""
        return self.opened_at is None or now - self.opened_at >= self.reset

    def retry_in(self, now: float) -> float:
        """Return seconds until a trial delivery is allowed (0 when closed)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.reset - now)

    @property
    def is_open(self) -> bool:
        """Return whether the breaker is open (or half-open)."""
        return self.opened_at is not None

    def success(self) -> None:
        """Close the breaker."""
        self.failures = 0
        self.opened_at = None

    def failure(self, now: float) -> bool:
        """Count a failed delivery; return True when this opens (or re-opens) the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = now
            return True
        return False


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """How a channel delivers: attempts, backoff, grouping, rate limit, breaker."""

    attempts: int = 3
    backoff: float = 0.5  # seconds before the second attempt; doubled for each one after
    group_window: float = 1.0
    burst: int = 10
    refill_seconds: float = 60.0
    breaker_threshold: int = 3
    breaker_reset: float = 60.0
    queue_size: int = 10_000


async def deliver(
    channel: Channel, notification: Notification, timeout: float, attempts: int, backoff: float
) -> None:
    """Send with a timeout per attempt and exponential backoff; raise ChannelError after the last attempt."""
    last: ChannelError | None = None
    for attempt in range(attempts):
        if attempt:
            await anyio.sleep(backoff * 2 ** (attempt - 1))
        try:
            with anyio.fail_after(timeout):
                await channel.send(notification)
        except ChannelError as exc:
            last = exc
        except TimeoutError:
            last = ChannelError(f"{channel.name}: no answer within {timeout:g}s")
        except Exception as exc:  # noqa: BLE001 - a third-party channel's bug must not stop delivery elsewhere
            last = ChannelError(f"{channel.name}: {type(exc).__name__}")
        else:
            return
        _log.debug("channel %s attempt %d/%d failed: %s", channel.name, attempt + 1, attempts, last)
    assert last is not None
    raise last


@dataclass
class ChannelStats:
    """What happened on one channel (for `alerts test`, self-telemetry and tests)."""

    sent_messages: int = 0
    sent_alerts: int = 0
    failed_messages: int = 0
    held_back: int = 0  # alerts counted into a summary instead of sent
    last_error: str | None = None
    extra: dict[str, int] = field(default_factory=dict)


class ChannelRunner:
    """Own one channel's queue; deliver from its own task so a slow channel delays no other."""

    def __init__(
        self,
        channel: Channel,
        policy: DeliveryPolicy,
        timeout: float,
        clock: Clock = time.time,
        origin: object = None,
    ) -> None:
        self.channel = channel
        self.policy = policy
        self.timeout = timeout
        self.clock = clock
        # What built the channel (its settings), so a reload can tell whether it changed.
        self.origin = origin
        self.bucket = TokenBucket(policy.burst, policy.refill_seconds, clock())
        # Rate limits and summaries are for people: a machine channel (NATS, webhook, syslog, log)
        # gets every alert. A channel says so with `rate_limited = False`; without it, it is limited.
        self.rate_limited = bool(getattr(channel, "rate_limited", True))
        self.breaker = CircuitBreaker(policy.breaker_threshold, policy.breaker_reset)
        self.stats = ChannelStats()
        self._lock = threading.Lock()
        self._pending: deque[Alert] = deque()
        self._first_at: float | None = None
        # Alerts held back (rate limit, overflow, failed delivery) by severity, reported in the next message.
        self._held: Counter[str] = Counter()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False
        self._stopped: asyncio.Event | None = None
        # Told (channel name, message, None or the reason) after each delivery; the manager's observers.
        self.on_outcome: Callable[[str, Notification, str | None], None] | None = None

    def set_policy(self, policy: DeliveryPolicy) -> None:
        """Apply new limits (a reload) without losing the queue or the held-back counts."""
        self.policy = policy
        self.bucket.burst, self.bucket.refill_seconds = policy.burst, policy.refill_seconds
        self.breaker.threshold, self.breaker.reset = policy.breaker_threshold, policy.breaker_reset

    @property
    def name(self) -> str:
        """Return the channel's name."""
        return self.channel.name

    # -- any thread --------------------------------------------------------------------------

    def enqueue(self, alert: Alert, now: float) -> None:
        """Queue one alert for the next message (thread-safe, never blocks)."""
        with self._lock:
            if len(self._pending) >= self.policy.queue_size:
                self._held[alert.severity.name.lower()] += 1
                self.stats.held_back += 1
            else:
                self._pending.append(alert)
                if self._first_at is None:
                    self._first_at = now
        self.wake()

    def wake(self) -> None:
        """Wake the delivery task (from any thread)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def pending(self) -> int:
        """Return how many alerts wait to be sent."""
        with self._lock:
            return len(self._pending)

    def held(self) -> dict[str, int]:
        """Return the held-back counts not yet reported."""
        with self._lock:
            return dict(self._held)

    # -- batching (pure over the clock: tests drive it with a fake clock) --------------------

    def collect(self, now: float, force: bool = False) -> list[Notification]:
        """Return the messages due at `now`: one per host for the alerts of a finished group window.

        Messages without a token (or while the circuit is open) are not sent: their alerts are
        counted and reported in the next message that does go out (or in a summary of their own
        when a token comes back and the circuit lets a trial through).
        """
        out: list[Notification] = []
        with self._lock:
            due = self._pending and (
                force or (self._first_at is not None and now - self._first_at >= self.policy.group_window)
            )
            groups: dict[str, list[Alert]] = {}
            if due:
                for alert in self._pending:
                    groups.setdefault(alert.host, []).append(alert)
                self._pending.clear()
                self._first_at = None
            # An open circuit would fail the message without trying: count it, spend no token.
            reachable = self.breaker.allow(now)
            for alerts in groups.values():
                if reachable and self._token(now):
                    out.append(Notification(alerts, dict(self._held)))
                    self._held.clear()
                else:
                    self._held.update(a.severity.name.lower() for a in alerts)
                    self.stats.held_back += len(alerts)
            if not out and self._held and not self._pending and self.breaker.allow(now) and self._token(now):
                out.append(Notification([], dict(self._held)))
                self._held.clear()
        return out

    def _token(self, now: float) -> bool:
        return not self.rate_limited or self.bucket.take(now)

    def next_due(self, now: float) -> float | None:
        """Return seconds until `collect` may have something (None: nothing waits)."""
        with self._lock:
            if self._pending and self._first_at is not None:
                return max(0.0, self._first_at + self.policy.group_window - now)
            if self._held:
                token = self.bucket.next_token_in(now) if self.rate_limited else 0.0
                return max(0.05, token, self.breaker.retry_in(now))
            return None

    # -- the delivery task -------------------------------------------------------------------

    async def send_now(self, notification: Notification) -> None:
        """Deliver one message through the breaker and retries; count what fails."""
        now = self.clock()
        if not self.breaker.allow(now):
            self._fail(
                notification, f"{self.name}: circuit open after {self.breaker.failures} failed deliveries"
            )
            return
        try:
            await deliver(self.channel, notification, self.timeout, self.policy.attempts, self.policy.backoff)
        except ChannelError as exc:
            if self.breaker.failure(self.clock()):
                _log.warning("channel %s: circuit opened for %gs: %s", self.name, self.breaker.reset, exc)
            self._fail(notification, str(exc))
            return
        if self.breaker.is_open:
            _log.info("channel %s: delivering again, circuit closed", self.name)
        self.breaker.success()
        self.stats.sent_messages += 1
        self.stats.sent_alerts += len(notification.alerts)
        self.stats.last_error = None
        if self.on_outcome is not None:
            self.on_outcome(self.name, notification, None)

    def _fail(self, notification: Notification, reason: str) -> None:
        self.stats.failed_messages += 1
        self.stats.last_error = reason
        if self.on_outcome is not None:
            self.on_outcome(self.name, notification, reason)
        if notification.test:
            return
        with self._lock:
            # Undelivered alerts join the held-back counts, so the next message that gets through says so.
            self._held.update(a.severity.name.lower() for a in notification.alerts)
            self._held.update(dict(notification.suppressed))
        self.stats.held_back += len(notification.alerts)
        count = len(notification.alerts) + sum(notification.suppressed.values())
        _log.warning("channel %s: %d alert(s) not delivered: %s", self.name, count, reason)

    async def pump(self, force: bool = False) -> None:
        """Send every message due now."""
        for notification in self.collect(self.clock(), force):
            await self.send_now(notification)

    async def run(self) -> None:
        """Deliver until closed (then flush what is pending) or cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        try:
            while True:
                self._wake.clear()
                await self.pump(force=self.closing)
                if self.closing and not self.pending():
                    return
                delay = self.next_due(self.clock())
                with anyio.move_on_after(delay if delay is not None else float("inf")):
                    await self._wake.wait()
        finally:
            self._stopped.set()

    async def close(self, timeout: float) -> None:
        """Flush what is pending within `timeout` seconds, then close the channel."""
        self.closing = True
        with anyio.move_on_after(timeout):
            running = self._stopped is not None and not self._stopped.is_set()
            if running and self._stopped is not None and self._loop is asyncio.get_running_loop():
                # The delivery task flushes (ignoring the group window) and stops.
                self.wake()
                await self._stopped.wait()
            if self.pending() or self.held():
                await self.pump(force=True)
        left = self.pending() + sum(self.held().values())
        if left:
            _log.warning("channel %s: %d alert(s) not delivered at shutdown", self.name, left)
        with anyio.move_on_after(max(1.0, timeout)):
            await self.channel.aclose()


def summary_alert(notification: Notification, host: str, now: float) -> Alert | None:
    """Return a notification's held-back counts as one alert of its own, for channels that carry
    only alerts (NATS): None when nothing was held back.

    Its rule is `sysops.alerts.held_back`, its severity the highest held back, its attributes the
    count per severity, so a consumer sees what it missed.
    """
    if not notification.suppressed:
        return None
    total = sum(notification.suppressed.values())
    severities = [Severity.parse(name) for name in notification.suppressed]
    counts = ", ".join(f"{n} {sev}" for sev, n in sorted(notification.suppressed.items()))
    return Alert(
        id=uuid.uuid4().hex,
        fingerprint=f"sysops.alerts.held_back:{host}",
        rule="sysops.alerts.held_back",
        metric="sysops.alerts.held_back",
        attributes={f"sysops.alerts.held_back.{sev}": str(n) for sev, n in notification.suppressed.items()},
        severity=max(severities, default=Severity.INFO),
        state="firing",
        starts_at=now,
        message=f"{total} alert(s) held back ({counts})",
        host=host,
        value=float(total),
    )
