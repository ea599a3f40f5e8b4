"""Delivery with the manager running on a real event loop: retries, timeouts, the circuit breaker,
isolation between channels, flushing on close, run-time channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, Unpack

import anyio
import pytest

from otel_sysops.alerts import (
    DEFAULT_DEDUP,
    AlertManager,
    DeliveryPolicy,
    Finding,
    ManagerPolicy,
    Severity,
)
from otel_sysops.alerts._http import WebhookChannel
from tests.alerts._servers import Receiver, http_receiver

pytestmark = pytest.mark.slow


class DeliveryOptions(TypedDict, total=False):
    """The DeliveryPolicy fields these tests set."""

    group_window: float
    backoff: float
    burst: int
    breaker_threshold: int
    breaker_reset: float


def policy(**delivery: Unpack[DeliveryOptions]) -> ManagerPolicy:
    base: DeliveryOptions = {"group_window": 0.0, "backoff": 0.01, "burst": 100, "breaker_threshold": 2}
    base.update(delivery)
    return ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(**base))


def fire(manager: AlertManager, rule: str, severity: Severity | None = Severity.CRITICAL) -> None:
    manager.submit(
        Finding(rule, "system.cpu.utilization", {"cpu": rule}, severity, f"{rule} busy", 0.99, 0.9)
    )


def hook(rx: Receiver, name: str, timeout: float = 5.0) -> tuple[WebhookChannel, float]:
    return WebhookChannel(name, Severity.INFO, rx.url + "/" + name, timeout, True), timeout


async def wait_until(predicate: Callable[[], object], limit: float = 10.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.01)


def test_retry_after_500_delivers_once() -> None:
    with http_receiver(statuses=[500, 502]) as rx:
        manager = AlertManager("web-1", policy())
        runner = manager.add_channel(*hook(rx, "ops"))

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                fire(manager, "a")
                await wait_until(lambda: runner.stats.sent_messages == 1)
                tg.cancel_scope.cancel()

        anyio.run(main)
        assert rx.attempts == 3
        assert len(rx.requests) == 1
        assert rx.requests[0].json()["alerts"][0]["rule"] == "a"
        assert runner.stats.failed_messages == 0


def test_hung_channel_times_out_opens_its_circuit_and_delays_no_other() -> None:
    with http_receiver(hang=60.0) as hung, http_receiver() as good:
        manager = AlertManager("web-1", policy(breaker_threshold=1))
        slow = manager.add_channel(*hook(hung, "slow", timeout=1.0))
        fast = manager.add_channel(*hook(good, "fast"))
        seen_while_hung: list[bool] = []

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                fire(manager, "a")
                await wait_until(lambda: hung.attempts >= 1)  # the slow channel is stuck on "a"
                await wait_until(lambda: len(good.requests) == 1)
                # The good channel delivered while the hung one was still waiting for an answer.
                seen_while_hung.append(slow.stats.failed_messages == 0)
                for count, rule in enumerate(("b", "c", "d"), start=2):
                    fire(manager, rule)

                    def delivered(n: int = count) -> bool:
                        return len(good.requests) == n

                    await wait_until(delivered)
                await wait_until(lambda: slow.breaker.is_open and sum(slow.held().values()) == 4, 30)
                tg.cancel_scope.cancel()

        anyio.run(main)
    assert seen_while_hung == [True]
    assert [r.json()["alerts"][0]["rule"] for r in good.requests] == ["a", "b", "c", "d"]
    assert fast.stats.failed_messages == 0
    assert slow.stats.sent_messages == 0
    # One delivery of 3 attempts timed out and opened the breaker; later ones failed fast, without a request.
    assert hung.attempts == 3
    assert slow.stats.last_error is not None
    # Nothing was lost silently: every undelivered alert is counted for the next message.
    assert slow.held() == {"critical": 4}


def test_breaker_half_opens_and_recovered_channel_reports_what_it_missed() -> None:
    with http_receiver(statuses=[500] * 6) as rx:
        manager = AlertManager("web-1", policy(breaker_reset=0.2))
        runner = manager.add_channel(*hook(rx, "ops"))

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                fire(manager, "a")
                fire(manager, "b", Severity.WARNING)
                await wait_until(lambda: runner.breaker.is_open)
                await anyio.sleep(0.3)  # past the reset: the next delivery is the trial
                fire(manager, "c")
                await wait_until(lambda: any(r.json()["alerts"] for r in rx.requests))
                tg.cancel_scope.cancel()

        anyio.run(main)
    # The trial after the reset succeeds; what was missed reaches the channel as a count (in a
    # summary of its own or with "c", whichever went first).
    bodies = [r.json() for r in rx.requests]
    assert [a["rule"] for b in bodies for a in b["alerts"]] == ["c"]
    missed: dict[str, int] = {}
    for body in bodies:
        for severity, n in body["suppressed"].items():
            missed[severity] = missed.get(severity, 0) + n
    assert missed == {"critical": 1, "warning": 1}
    assert not runner.breaker.is_open


def test_close_flushes_pending_alerts_before_the_window_ends() -> None:
    with http_receiver() as rx:
        manager = AlertManager("web-1", policy(group_window=60.0))
        manager.add_channel(*hook(rx, "ops"))

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await anyio.sleep(0.05)
                fire(manager, "a")
                fire(manager, "b")
                await manager.aclose(5.0)
                tg.cancel_scope.cancel()

        anyio.run(main)
    assert len(rx.requests) == 1
    assert [a["rule"] for a in rx.requests[0].json()["alerts"]] == ["a", "b"]


def test_close_without_running_still_flushes() -> None:
    with http_receiver() as rx:
        manager = AlertManager("web-1", policy(group_window=60.0))
        manager.add_channel(*hook(rx, "ops"))
        fire(manager, "a")
        anyio.run(manager.aclose, 5.0)
    assert len(rx.requests) == 1


def test_channel_added_at_run_time_starts_delivering() -> None:
    with http_receiver() as rx:
        manager = AlertManager("web-1", policy())

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await anyio.sleep(0.05)
                manager.add_channel(*hook(rx, "late"))
                fire(manager, "a")
                await wait_until(lambda: len(rx.requests) == 1)
                assert await manager.remove_channel("late") is True
                fire(manager, "b")
                await anyio.sleep(0.1)
                tg.cancel_scope.cancel()

        anyio.run(main)
    assert [r.json()["alerts"][0]["rule"] for r in rx.requests] == ["a"]


def test_submit_from_another_thread_wakes_delivery() -> None:
    with http_receiver() as rx:
        manager = AlertManager("web-1", policy())
        manager.add_channel(*hook(rx, "ops"))

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                await anyio.sleep(0.05)
                await anyio.to_thread.run_sync(fire, manager, "threaded")
                await wait_until(lambda: len(rx.requests) == 1)
                tg.cancel_scope.cancel()

        anyio.run(main)
    assert rx.requests[0].json()["alerts"][0]["rule"] == "threaded"


def test_send_test_reports_per_channel() -> None:
    with http_receiver() as good, http_receiver(default_status=500) as bad:
        manager = AlertManager("web-1", policy())
        manager.add_channel(*hook(good, "good"))
        manager.add_channel(*hook(bad, "bad"))
        results = anyio.run(manager.send_test)
    assert results["good"] is None
    assert results["bad"] is not None
    assert "HTTP 500" in results["bad"]
    assert good.requests[0].json()["test"] is True
