"""The OpenTelemetry SDK environment variables the agent honours, read as the specification says.

`resolve_otel_environment` is a pure function of the environment: it returns the choices, or
raises ConfigError naming the variable. `apply_otel_environment` folds them into the settings,
where an explicit otel-sysops setting (file, `SYSOPS_*`, command line) wins over an `OTEL_*`
variable, and `OTEL_SDK_DISABLED=true` wins over everything: no telemetry is exported (no OTLP, no
`/metrics`), the agent still collects, analyses and alerts.

| variable | meaning here |
|---|---|
| `OTEL_SDK_DISABLED` | `true` (any case): no export at all |
| `OTEL_METRICS_EXPORTER` | comma list of `otlp`, `prometheus`; or `none` |
| `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds: the collection interval when `interval` is not set |
| `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` | `cumulative` (default), `delta`, `lowmemory` |
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from otel_sysops.errors import ConfigError

if TYPE_CHECKING:
    from ._core import Settings

_log = logging.getLogger("otel_sysops")

SDK_DISABLED = "OTEL_SDK_DISABLED"
METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
TEMPORALITY = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
EXPORTERS = ("otlp", "prometheus")
# The agent's interval bounds (seconds), as the `interval` setting has them.
MIN_INTERVAL, MAX_INTERVAL = 0.05, 3600.0

Temporality = Literal["cumulative", "delta", "lowmemory"]


@dataclass(frozen=True, slots=True)
class OtelChoices:
    """What the OTEL_* variables ask for; None where a variable is unset (no opinion)."""

    sdk_disabled: bool = False
    # The exporters OTEL_METRICS_EXPORTER names (empty for "none"); None when unset.
    exporters: frozenset[str] | None = None
    # Seconds, from OTEL_METRIC_EXPORT_INTERVAL (milliseconds).
    interval: float | None = None
    temporality: Temporality = "cumulative"
    warnings: tuple[str, ...] = field(default=())

    def exports(self, exporter: str) -> bool | None:
        """Return whether `exporter` is asked for (False when the SDK is disabled), None: no opinion."""
        if self.sdk_disabled:
            return False
        if self.exporters is None:
            return None
        return exporter in self.exporters


def _value(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def resolve_otel_environment(environ: Mapping[str, str]) -> OtelChoices:
    """Return the choices the OTEL_* variables in `environ` make; ConfigError names a bad one."""
    warnings: list[str] = []
    disabled_text = _value(environ, SDK_DISABLED).lower()
    # The specification's boolean: only "true" is true; anything but "false" or empty is warned about.
    if disabled_text not in ("", "true", "false"):
        warnings.append(f"{SDK_DISABLED}={environ[SDK_DISABLED]!r} is not true or false; read as false")
    sdk_disabled = disabled_text == "true"

    exporters: frozenset[str] | None = None
    listed = _value(environ, METRICS_EXPORTER)
    if listed:
        names = [n.strip().lower() for n in listed.split(",") if n.strip()]
        unknown = sorted({n for n in names if n not in (*EXPORTERS, "none")})
        if unknown:
            raise ConfigError(
                f"{METRICS_EXPORTER}: {', '.join(unknown)} not supported; accepted: otlp, prometheus, none"
            )
        if "none" in names and len(set(names)) > 1:
            raise ConfigError(f"{METRICS_EXPORTER}: 'none' cannot be combined with other exporters")
        exporters = frozenset(n for n in names if n != "none")

    interval: float | None = None
    millis = _value(environ, EXPORT_INTERVAL)
    if millis:
        try:
            interval = int(millis) / 1000.0
        except ValueError:
            raise ConfigError(
                f"{EXPORT_INTERVAL}: {millis!r} is not a whole number of milliseconds"
            ) from None
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            raise ConfigError(
                f"{EXPORT_INTERVAL}: {millis} ms is outside "
                f"{MIN_INTERVAL * 1000:g}..{MAX_INTERVAL * 1000:g} ms"
            )

    temporality_text = _value(environ, TEMPORALITY).lower() or "cumulative"
    if temporality_text not in ("cumulative", "delta", "lowmemory"):
        raise ConfigError(
            f"{TEMPORALITY}: {environ[TEMPORALITY]!r} is not supported; "
            "accepted: cumulative, delta, lowmemory"
        )
    temporality: Temporality = temporality_text  # type: ignore[assignment]
    return OtelChoices(sdk_disabled, exporters, interval, temporality, tuple(warnings))


def apply_otel_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """Return `settings` with the OTEL_* choices applied where no explicit setting says otherwise."""
    choices = resolve_otel_environment(environ)
    for warning in choices.warnings:
        _log.warning("%s", warning)
    update: dict[str, object] = {}
    if choices.interval is not None and "interval" not in settings.model_fields_set:
        update["interval"] = choices.interval
    for section_name, exporter in (("otlp", "otlp"), ("prometheus", "prometheus")):
        section = getattr(settings, section_name)
        wanted = choices.exports(exporter)
        explicit = "enabled" in section.model_fields_set and section.enabled is not None
        if wanted is None or (explicit and not choices.sdk_disabled):
            continue
        if section.enabled != wanted:
            update[section_name] = section.model_copy(update={"enabled": wanted})
    if choices.sdk_disabled:
        _log.info(
            "%s=true: no telemetry is exported (no OTLP, no /metrics); collection, analysis and alerts go on",
            SDK_DISABLED,
        )
    return settings.model_copy(update=update) if update else settings
