"""Settings: one object built from defaults, a TOML file, SYSOPS_* variables and the command line."""

from ._api import ApiSettings
from ._base import Section
from ._core import (
    CONFIG_ENV,
    LogSettings,
    OtlpSettings,
    PrometheusSettings,
    Settings,
    StoreSettings,
    load_settings,
)

__all__ = [
    "CONFIG_ENV",
    "ApiSettings",
    "LogSettings",
    "OtlpSettings",
    "PrometheusSettings",
    "Section",
    "Settings",
    "StoreSettings",
    "load_settings",
]
