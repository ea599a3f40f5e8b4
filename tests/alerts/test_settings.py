"""Alert settings: every channel type from TOML, one channel from the environment alone, secrets from
files, validation errors that name the field, masking in `config show`, reload in place."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from otel_sysops.alerts import AlertManager, Finding, Severity
from otel_sysops.alerts._build import build_channel, build_manager, reconfigure
from otel_sysops.alerts._email import EmailChannel
from otel_sysops.alerts._http import DiscordChannel, SlackChannel, TelegramChannel, WebhookChannel
from otel_sysops.alerts._log import LogChannel
from otel_sysops.alerts._syslog import SyslogChannel
from otel_sysops.errors import ConfigError
from otel_sysops.settings import Settings, load_settings
from tests.alerts._servers import http_receiver

ALL_TYPES = """
[alerts]
group_window = 0.5
reminder_interval = 0
dedup = { warning = 120 }
rate_limit = { burst = 5, refill_seconds = 30 }

[[alerts.channels]]
type = "discord"
url = "https://discord.com/api/webhooks/1/SECRET-D"
min_severity = "critical"

[[alerts.channels]]
type = "slack"
name = "team"
url = "https://hooks.slack.com/services/T/B/SECRET-S"
matchers = { team = "web" }

[[alerts.channels]]
type = "telegram"
token = "123:SECRET-T"
chat_id = "-100"

[[alerts.channels]]
type = "email"
host = "smtp.example.com"
from = "agent@example.com"
to = ["ops@example.com"]
username = "agent"
password = "SECRET-P"

[[alerts.channels]]
type = "webhook"
url = "https://hooks.example.com/sysops"
headers = { Authorization = "Bearer SECRET-H" }
secret = "SECRET-W"

[[alerts.channels]]
type = "syslog"
transport = "tcp"
address = "logs.example.com:6514"

[[alerts.channels]]
type = "log"

[[alerts.silences]]
matchers = { rule = "disk.*" }
expires = 2099-01-01T00:00:00Z
comment = "disks being replaced"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sysops.toml"
    path.write_text(text)
    return path


def test_every_channel_type_from_the_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ALL_TYPES), environ={})
    channels = [build_channel(c) for c in settings.alerts.all_channels()]
    kinds = [type(c) for c in channels]
    assert kinds == [
        DiscordChannel,
        SlackChannel,
        TelegramChannel,
        EmailChannel,
        WebhookChannel,
        SyslogChannel,
        LogChannel,
    ]
    assert [c.name for c in channels] == ["discord", "team", "telegram", "email", "webhook", "syslog", "log"]
    assert channels[0].min_severity == Severity.CRITICAL
    assert channels[6].min_severity == Severity.INFO
    manager = build_manager(settings)
    assert manager.policy.dedup[Severity.WARNING] == 120
    assert manager.policy.dedup[Severity.CRITICAL] == 60
    assert manager.policy.delivery.burst == 5
    assert manager.policy.reminder_interval == 0
    (silence,) = manager.silences()
    assert silence["matchers"] == {"rule": "disk.*"}
    assert silence["comment"] == "disks being replaced"


def test_no_channel_means_the_log() -> None:
    settings = load_settings(None, {"prometheus": {"enabled": False}}, environ={})
    (channel,) = settings.alerts.all_channels()
    assert channel.type == "log"


def test_one_channel_purely_from_the_environment(tmp_path: Path) -> None:
    secret = tmp_path / "url"
    secret.write_text("https://hooks.slack.com/services/T/B/FROM-FILE\n")
    env = {
        "SYSOPS_ALERTS__CHANNEL__TYPE": "slack",
        "SYSOPS_ALERTS__CHANNEL__NAME": "oncall",
        "SYSOPS_ALERTS__CHANNEL__MIN_SEVERITY": "critical",
        "SYSOPS_ALERTS__CHANNEL__URL_FILE": str(secret),
    }
    settings = load_settings(None, environ=env)
    (channel,) = settings.alerts.all_channels()
    assert channel.type == "slack"
    assert channel.name == "oncall"
    assert channel.url.get_secret_value() == "https://hooks.slack.com/services/T/B/FROM-FILE"


def test_channel_list_from_the_environment_as_json() -> None:
    channels = [{"type": "webhook", "name": "a", "url": "https://a.example.com/x"}, {"type": "log"}]
    settings = load_settings(None, environ={"SYSOPS_ALERTS__CHANNELS": json.dumps(channels)})
    assert [c.name for c in settings.alerts.all_channels()] == ["a", "log"]


def test_secret_file_in_the_toml(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("999:FILETOKEN")
    path = write(tmp_path, f'[[alerts.channels]]\ntype = "telegram"\ntoken_file = "{token}"\nchat_id = "1"\n')
    (channel,) = load_settings(path, environ={}).alerts.all_channels()
    assert channel.type == "telegram"
    assert channel.token.get_secret_value() == "999:FILETOKEN"


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ('[[alerts.channels]]\ntype = "pager"\n', "alerts.channels.0"),
        ('[[alerts.channels]]\ntype = "slack"\n', "alerts.channels.0.slack.url"),
        ('[[alerts.channels]]\ntype = "slack"\nurl = "http://hooks.slack.com/x"\n', "must be https"),
        ('[[alerts.channels]]\ntype = "webhook"\nurl = "ftp://x/y"\n', "http(s) URL"),
        ('[[alerts.channels]]\ntype = "log"\nmin_severity = "loud"\n', "alerts.channels.0.log.min_severity"),
        ('[[alerts.channels]]\ntype = "log"\ncolour = "red"\n', "alerts.channels.0.log.colour"),
        ('[[alerts.channels]]\ntype = "syslog"\naddress = "nohost"\n', "address: expected host:port"),
        (
            '[[alerts.channels]]\ntype = "email"\nhost = "h"\nfrom = "a@b"\nto = ["c@d"]\n'
            'security = "none"\n',
            "clear text",
        ),
        ('[[alerts.channels]]\ntype = "webhook"\nurl_file = "/nonexistent/x"\n', "url_file: cannot read"),
        ('[[alerts.channels]]\ntype = "log"\n[[alerts.channels]]\ntype = "log"\n', "duplicate name(s) log"),
        ("[alerts]\nrate_limit = { burst = 0 }\n", "alerts.rate_limit.burst"),
        ('[[alerts.silences]]\nmatchers = { rule = "x" }\nexpires = 2099-01-01T00:00:00\n', "time zone"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, toml: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, toml), environ={})
    assert field in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_environment_channel_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"channel\.url"):
        load_settings(None, environ={"SYSOPS_ALERTS__CHANNEL__TYPE": "slack"})


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_sysops", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


@pytest.mark.slow
def test_config_show_masks_every_secret(tmp_path: Path) -> None:
    result = run_cli("config", "show", "--config", str(write(tmp_path, ALL_TYPES)))
    assert result.returncode == 0, result.stderr
    assert "SECRET" not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["alerts"]["channels"][0]["url"] == "**********"


@pytest.mark.slow
def test_bad_channel_exits_2_naming_the_field(tmp_path: Path) -> None:
    result = run_cli(
        "config", "check", "--config", str(write(tmp_path, '[[alerts.channels]]\ntype = "slack"\n'))
    )
    assert result.returncode == 2
    assert "alerts.channels.0.slack.url" in result.stderr


def test_reload_rebuilds_changed_channels_and_keeps_alert_state(
    make_settings: Callable[..., Settings],
) -> None:
    with http_receiver() as first, http_receiver() as second, http_receiver() as extra:

        def settings_for(url: str, more: list[dict[str, Any]] | None = None) -> Settings:
            channels = [{"type": "webhook", "name": "ops", "url": url, "allow_insecure": True}, *(more or [])]
            return make_settings(alerts={"channels": channels, "group_window": 0})

        before = settings_for(first.url + "/a")
        after = settings_for(second.url + "/b", [{"type": "log"}])
        manager = build_manager(before)
        # A channel added at run time (as the NATS bridge does) survives the reload.
        runtime = manager.add_channel(WebhookChannel("nats", Severity.INFO, extra.url + "/n", 5.0, True))
        sid = manager.add_silence({"rule": "never"}, 3600)

        async def main() -> None:
            async with anyio.create_task_group() as tg:
                tg.start_soon(manager.run)
                manager.submit(Finding("cpu", "system.cpu.utilization", {}, Severity.CRITICAL, "busy"))
                while len(first.requests) < 1:
                    await anyio.sleep(0.01)
                await reconfigure(manager, after.alerts)
                manager.submit(Finding("cpu", "system.cpu.utilization", {}, None, "ok"))
                while len(second.requests) < 1 or len(extra.requests) < 2:
                    await anyio.sleep(0.01)
                tg.cancel_scope.cancel()

        anyio.run(main)
        assert sorted(r.name for r in manager.runners) == ["log", "nats", "ops"]
        assert runtime in manager.runners
        # The resolution went to the new URL: the active alert survived the reload.
        assert second.requests[0].json()["alerts"][0]["state"] == "resolved"
        assert len(first.requests) == 1
        assert [s["id"] for s in manager.silences()] == [sid]


def test_manager_is_the_agents_sink_when_enabled(make_settings: Callable[..., Settings]) -> None:
    from otel_sysops.agent import Agent
    from otel_sysops.alerts import LogAlertSink

    assert isinstance(Agent(make_settings()).alerts, AlertManager)
    assert isinstance(Agent(make_settings(alerts={"enabled": False})).alerts, LogAlertSink)
