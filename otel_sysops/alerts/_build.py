"""Build channels and the alert manager from the settings; re-apply them on reload."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from otel_sysops.findings import AlertSink, LogAlertSink, Severity
from otel_sysops.resource import host_name
from otel_sysops.settings import (
    AlertmanagerChannelSettings,
    AlertsSettings,
    ChannelSettings,
    DiscordChannelSettings,
    EmailChannelSettings,
    LogChannelSettings,
    SlackChannelSettings,
    SyslogChannelSettings,
    TelegramChannelSettings,
    WebhookChannelSettings,
)

from ._delivery import DeliveryPolicy
from ._log import LogChannel
from ._manager import AlertManager, ManagerPolicy
from ._syslog import SyslogChannel
from .channel import Channel

if TYPE_CHECKING:
    from otel_sysops.settings import Settings

_log = logging.getLogger("otel_sysops.alerts")

# Marks silences that come from the settings file (replaced on reload, unlike run-time ones).
SETTINGS_ORIGIN = "settings"


def build_channel(cfg: ChannelSettings) -> Channel:  # noqa: PLR0911 - one return per channel type
    """Return the channel a settings entry describes."""
    floor = Severity.parse(cfg.min_severity)
    # The network channels import httpx (and the e-mail one smtplib) only when configured: an
    # agent with none keeps ~40 ms of imports and their memory out of the process.
    if isinstance(cfg, DiscordChannelSettings):
        from ._http import DiscordChannel

        return DiscordChannel(
            cfg.name,
            floor,
            cfg.url.get_secret_value(),
            cfg.timeout,
            cfg.allow_insecure,
            username=cfg.username,
        )
    if isinstance(cfg, SlackChannelSettings):
        from ._http import SlackChannel

        return SlackChannel(cfg.name, floor, cfg.url.get_secret_value(), cfg.timeout, cfg.allow_insecure)
    if isinstance(cfg, TelegramChannelSettings):
        from ._http import TelegramChannel

        return TelegramChannel(
            cfg.name,
            floor,
            cfg.token.get_secret_value(),
            cfg.chat_id,
            cfg.timeout,
            cfg.api_url,
            cfg.allow_insecure,
        )
    if isinstance(cfg, WebhookChannelSettings):
        from ._http import WebhookChannel

        return WebhookChannel(
            cfg.name,
            floor,
            cfg.url.get_secret_value(),
            cfg.timeout,
            cfg.allow_insecure,
            headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
            secret=cfg.secret.get_secret_value() if cfg.secret else None,
            signature_header=cfg.signature_header,
            format=cfg.format,
        )
    if isinstance(cfg, AlertmanagerChannelSettings):
        from ._alertmanager import AlertmanagerChannel

        return AlertmanagerChannel(
            cfg.name,
            floor,
            cfg.urls,
            cfg.timeout,
            cfg.allow_insecure,
            headers={k: v.get_secret_value() for k, v in cfg.headers.items()},
            resend_interval=cfg.resend_interval,
            ca_file=str(cfg.ca_file) if cfg.ca_file else None,
        )
    if isinstance(cfg, EmailChannelSettings):
        from ._email import EmailChannel

        return EmailChannel(
            cfg.name,
            floor,
            cfg.host,
            cfg.effective_port,
            cfg.sender,
            cfg.to,
            cfg.timeout,
            cfg.security,
            cfg.username,
            cfg.password.get_secret_value() if cfg.password else None,
            str(cfg.ca_file) if cfg.ca_file else None,
        )
    if isinstance(cfg, SyslogChannelSettings):
        return SyslogChannel(
            cfg.name, floor, cfg.transport, cfg.address, cfg.timeout, cfg.facility, cfg.app_name
        )
    assert isinstance(cfg, LogChannelSettings)
    return LogChannel(cfg.name, floor)


def manager_policy(cfg: AlertsSettings) -> ManagerPolicy:
    """Return the manager's windows and the delivery policy from the settings."""
    dedup = {Severity.parse(name): seconds for name, seconds in cfg.dedup.model_dump().items()}
    delivery = DeliveryPolicy(
        group_window=cfg.group_window,
        burst=cfg.rate_limit.burst,
        refill_seconds=cfg.rate_limit.refill_seconds,
        breaker_threshold=cfg.breaker_threshold,
        breaker_reset=cfg.breaker_reset,
        queue_size=cfg.queue_size,
    )
    return ManagerPolicy(dedup, cfg.reminder_interval, delivery)


def apply_silences(manager: AlertManager, cfg: AlertsSettings) -> None:
    """Replace the settings file's silences (run-time silences are kept)."""
    now = manager.clock()
    manager.silence_book.replace_origin(
        SETTINGS_ORIGIN, [(s.matchers, now, s.expires.timestamp(), s.comment) for s in cfg.silences]
    )


def build_manager(settings: Settings) -> AlertManager:
    """Return an alert manager with the configured channels and silences."""
    cfg = settings.alerts
    manager = AlertManager(host_name(settings, settings.host_root), manager_policy(cfg))
    for channel_cfg in cfg.all_channels():
        manager.add_channel(build_channel(channel_cfg), channel_cfg.timeout, origin=channel_cfg)
    apply_silences(manager, cfg)
    return manager


async def reconfigure(manager: AlertManager, cfg: AlertsSettings) -> None:
    """Re-apply channel settings in place: unchanged channels keep their queues, changed ones are rebuilt.

    Channels added at run time (no settings origin, e.g. the NATS bridge's) are left alone; the
    active alerts, dedup memory and run-time silences are kept.
    """
    policy = manager_policy(cfg)
    if policy != manager.policy:
        manager.set_policy(policy)
    wanted = {c.name: c for c in cfg.all_channels()}
    for runner in manager.runners:
        origin = runner.origin
        if origin is None:
            continue
        if wanted.get(runner.name) != origin:
            await manager.remove_channel(runner.name)
    present = {r.name for r in manager.runners}
    for name, channel_cfg in wanted.items():
        if name not in present:
            manager.add_channel(build_channel(channel_cfg), channel_cfg.timeout, origin=channel_cfg)
    apply_silences(manager, cfg)


def build_alert_sink(settings: Settings) -> AlertSink:
    """Return the agent's alert sink: the manager, or the plain log sink when alerts are disabled."""
    if not settings.alerts.enabled:
        return LogAlertSink()
    return build_manager(settings)
