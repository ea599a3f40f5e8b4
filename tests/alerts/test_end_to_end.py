"""Done-when: `otel-sysops alerts test` delivers to a local listener; a running agent delivers a firing
alert then its resolution to that listener."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
import pytest

from otel_sysops.agent import Agent
from otel_sysops.alerts import AlertManager, Finding, Severity
from otel_sysops.app import alert_service
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import Settings, load_settings
from tests.alerts._servers import http_receiver
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "otel_sysops", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )


def test_alerts_test_delivers_a_json_alert_to_a_local_webhook(tmp_path: Path) -> None:
    with http_receiver() as rx:
        config = tmp_path / "sysops.toml"
        config.write_text(
            f'[[alerts.channels]]\ntype = "webhook"\nname = "ops"\nurl = "{rx.url}/sysops"\n'
            'allow_insecure = true\nsecret = "hmac-key"\n'
        )
        result = run_cli("alerts", "test", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert "ops" in result.stdout
        assert "delivered" in result.stdout
        (req,) = rx.requests
    body = req.json()
    assert req.path == "/sysops"
    assert body["test"] is True
    assert body["alerts"][0]["rule"] == "sysops.test"
    assert req.headers["X-Sysops-Signature"].startswith("sha256=")


def test_alerts_test_exits_1_with_the_reason_and_no_secret(tmp_path: Path) -> None:
    with http_receiver() as good, http_receiver(default_status=500) as bad:
        config = tmp_path / "sysops.toml"
        config.write_text(
            f'[[alerts.channels]]\ntype = "webhook"\nname = "good"\nurl = "{good.url}/g"\n'
            "allow_insecure = true\n"
            f'[[alerts.channels]]\ntype = "slack"\nname = "bad"\nurl = "{bad.url}/services/SECRET"\n'
            "allow_insecure = true\ntimeout = 2\n"
        )
        result = run_cli("alerts", "test", "--config", str(config))
        only = run_cli("alerts", "test", "--config", str(config), "--channel", "good")
        unknown = run_cli("alerts", "test", "--config", str(config), "--channel", "nope")
    assert result.returncode == 1
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["good"] == "delivered"
    assert lines["bad"].startswith("FAILED:")
    assert "HTTP 500" in lines["bad"]
    assert "SECRET" not in result.stdout + result.stderr
    assert only.returncode == 0
    assert only.stdout.split() == ["good", "delivered"]
    assert unknown.returncode == 2
    assert "no such channel" in unknown.stderr


class FlipAnalyzer(Analyzer):
    """Fires for the first ticks, then clears: a stand-in for the threshold analyzer."""

    def __init__(self, ctx: AnalyzerContext, firing_ticks: int = 3) -> None:
        super().__init__(ctx)
        self.ticks = 0
        self.firing_ticks = firing_ticks

    def analyze(self, now: float) -> Iterable[Finding]:
        self.ticks += 1
        severity = Severity.CRITICAL if self.ticks <= self.firing_ticks else None
        yield Finding(
            rule="test.cpu.threshold",
            metric="system.cpu.utilization",
            attributes={},
            severity=severity,
            message="cpu above 1%" if severity else "cpu below 1%",
            value=0.5,
            threshold=0.01,
            timestamp=now,
        )


def test_running_agent_delivers_firing_then_resolved(make_settings: Callable[..., Settings]) -> None:
    with http_receiver() as rx:
        settings = make_settings(
            interval=0.1,
            alerts={
                "channels": [
                    {"type": "webhook", "name": "ops", "url": rx.url + "/e2e", "allow_insecure": True}
                ],
                "group_window": 0.05,
            },
        )
        agent = Agent(settings, service_factories=[alert_service])
        assert isinstance(agent.alerts, AlertManager)
        ctx = AnalyzerContext("flip", settings, agent.pipeline.store)
        agent.pipeline.add_analyzer("flip", FlipAnalyzer(ctx))

        async def main() -> int:
            codes: list[int] = []
            async with anyio.create_task_group() as tg:

                async def stop_when_resolved() -> None:
                    with anyio.fail_after(30):
                        while not any(r.json()["status"] == "resolved" for r in rx.requests):
                            await anyio.sleep(0.05)
                    # The real shutdown path: SIGTERM, services flushed, pipeline closed.
                    os.kill(os.getpid(), signal.SIGTERM)

                tg.start_soon(stop_when_resolved)
                codes.append(await agent.run())
            return codes[0]

        assert anyio.run(main, backend="asyncio") == 0
    alerts = [a for r in rx.requests for a in r.json()["alerts"]]
    assert [(a["state"], a["severity"], a["rule"]) for a in alerts] == [
        ("firing", "critical", "test.cpu.threshold"),
        ("resolved", "critical", "test.cpu.threshold"),
    ]
    assert alerts[0]["id"] == alerts[1]["id"]
    assert alerts[1]["ends_at"] >= alerts[0]["starts_at"]
    assert alerts[0]["host"]


class SwitchAnalyzer(Analyzer):
    """Fires while `firing` is set; the test clears it."""

    firing = True

    def analyze(self, now: float) -> Iterable[Finding]:
        severity = Severity.WARNING if type(self).firing else None
        yield Finding("test.switch", "system.cpu.utilization", {}, severity, "switch", timestamp=now)


def test_sighup_reload_moves_the_channel_and_keeps_the_active_alert(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    SwitchAnalyzer.firing = True
    with http_receiver() as first, http_receiver() as second:
        config = tmp_path / "sysops.toml"
        port = free_port()

        def write(url: str) -> None:
            config.write_text(
                f"interval = 0.1\n[prometheus]\nenabled = false\nport = {port}\n"
                "[alerts]\ngroup_window = 0.05\n"
                f'[[alerts.channels]]\ntype = "webhook"\nname = "ops"\nurl = "{url}"\nallow_insecure = true\n'
            )

        write(first.url + "/one")
        settings = load_settings(config, environ={})
        agent = Agent(settings, config=config, service_factories=[alert_service])
        manager = agent.alerts
        assert isinstance(manager, AlertManager)
        agent.add_pipeline_hook(
            lambda p: p.add_analyzer("switch", SwitchAnalyzer(AnalyzerContext("switch", p.settings, p.store)))
        )

        async def main() -> int:
            codes: list[int] = []
            async with anyio.create_task_group() as tg:

                async def drive() -> None:
                    with anyio.fail_after(30):
                        while not first.requests:
                            await anyio.sleep(0.05)
                        write(second.url + "/two")
                        os.kill(os.getpid(), signal.SIGHUP)
                        # Wait until the reload has rebuilt the channel from the new file.
                        while not (
                            manager.runners
                            and getattr(manager.runners[0].channel, "masked_url", "") == second.url + "/***"
                        ):
                            await anyio.sleep(0.05)
                        SwitchAnalyzer.firing = False
                        while not second.requests:
                            await anyio.sleep(0.05)
                    os.kill(os.getpid(), signal.SIGTERM)

                tg.start_soon(drive)
                codes.append(await agent.run())
            return codes[0]

        assert anyio.run(main, backend="asyncio") == 0
    assert [a["state"] for r in first.requests for a in r.json()["alerts"]] == ["firing"]
    # After the reload the resolution went to the new URL: the alert state survived.
    assert [a["state"] for r in second.requests for a in r.json()["alerts"]] == ["resolved"]
