"""Settings: one object built from defaults, a TOML file, SYSOPS_* variables and the command line."""

from ._alerts import (
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
from ._analyzers import AnalyzersSettings, LeakRule, ThresholdRule, TrendRule
from ._base import Section
from ._core import (
    CONFIG_ENV,
    ENV_NESTED,
    ENV_PREFIX,
    LogSettings,
    OtlpSettings,
    PrometheusSettings,
    Settings,
    StoreSettings,
    check_roots,
    is_string_list,
    load_settings,
)
from ._nats import NatsSettings

__all__ = [
    "CONFIG_ENV",
    "ENV_NESTED",
    "ENV_PREFIX",
    "AlertsSettings",
    "AnalyzersSettings",
    "ChannelSettings",
    "DiscordChannelSettings",
    "EmailChannelSettings",
    "LeakRule",
    "LogChannelSettings",
    "LogSettings",
    "NatsSettings",
    "OtlpSettings",
    "PrometheusSettings",
    "Section",
    "Settings",
    "SlackChannelSettings",
    "StoreSettings",
    "SyslogChannelSettings",
    "TelegramChannelSettings",
    "ThresholdRule",
    "TrendRule",
    "WebhookChannelSettings",
    "check_roots",
    "is_string_list",
    "load_settings",
]
