"""Settings: one object built from defaults, a TOML file, SYSOPS_* variables and the command line."""

from ._alerts import (
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
from ._analyzers import AnalyzersSettings, LeakRule, ThresholdRule, TrendRule
from ._api import ApiSettings
from ._base import Section
from ._core import (
    CONFIG_ENV,
    ENV_NESTED,
    ENV_PREFIX,
    BudgetSettings,
    LogSettings,
    OtlpSettings,
    PrometheusSettings,
    Settings,
    StoreSettings,
    check_roots,
    is_string_list,
    load_settings,
)
from ._hub import HubSettings
from ._nats import NatsSettings
from ._otel import OtelChoices, apply_otel_environment, resolve_otel_environment

__all__ = [
    "CONFIG_ENV",
    "ENV_NESTED",
    "ENV_PREFIX",
    "AlertmanagerChannelSettings",
    "AlertsSettings",
    "AnalyzersSettings",
    "ApiSettings",
    "BudgetSettings",
    "ChannelSettings",
    "DiscordChannelSettings",
    "EmailChannelSettings",
    "HubSettings",
    "LeakRule",
    "LogChannelSettings",
    "LogSettings",
    "NatsSettings",
    "OtelChoices",
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
    "apply_otel_environment",
    "check_roots",
    "is_string_list",
    "load_settings",
    "resolve_otel_environment",
]
