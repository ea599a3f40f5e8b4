"""The one `Settings` object: defaults < TOML file < environment < command line."""

from __future__ import annotations

import contextvars
import json
import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from otel_sysops.errors import ConfigError

from ._alerts import AlertsSettings
from ._analyzers import AnalyzersSettings
from ._api import ApiSettings
from ._base import Section
from ._gpu import GpuSettings
from ._health import HealthSettings
from ._hub import HubSettings
from ._instrumentation import InstrumentationSettings
from ._logs import LogsSettings
from ._nats import NatsSettings

ENV_PREFIX = "SYSOPS_"
ENV_NESTED = "__"
# Read before the model is built: it says which file to load.
CONFIG_ENV = "SYSOPS_CONFIG"
# Set while load_settings() validates: its sources are explicit, the model reads no environment.
_EXPLICIT = contextvars.ContextVar("sysops_explicit_sources", default=False)


class PrometheusSettings(Section):
    """The Prometheus endpoint that serves the latest collection (and /healthz, /readyz)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)


class OtlpSettings(Section):
    """OTLP export; endpoint, headers, timeout, compression come from the standard OTEL_* variables."""

    # None: on when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set.
    enabled: bool | None = None
    # None: OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, then OTEL_EXPORTER_OTLP_PROTOCOL, then grpc.
    protocol: Literal["grpc", "http/protobuf"] | None = None
    # Ticks held while the endpoint is down; the oldest is dropped (and counted) past this.
    queue_size: int = Field(60, ge=1, le=100_000)
    # Data points held in all while the endpoint is down (bounds the memory of the backlog).
    max_points: int = Field(20_000, ge=1)
    # Attempts per batch before it is dropped (and counted).
    max_attempts: int = Field(5, ge=1, le=100)


class StoreSettings(Section):
    """The in-process ring store the analyzers read."""

    raw_window: float = Field(3600.0, gt=0, description="seconds of raw points kept per series")
    rollup_window: float = Field(86400.0, gt=0, description="seconds of rollups kept per series")
    rollup_resolution: float = Field(
        300.0, ge=10, description="seconds per rollup (min, max, mean, last); sizes the store with max_series"
    )
    max_series: int = Field(5000, ge=1)
    # Series not seen for this long are evicted, freeing their slot.
    evict_after: float = Field(900.0, gt=0)
    # SQLite file for rollups, so a restart keeps history; None keeps them in memory only.
    sqlite_path: Path | None = None


class BudgetSettings(Section):
    """The agent's own budget: past a limit for `for_seconds`, a finding and optional work shed."""

    enabled: bool = True
    rss_max_mb: float = Field(100.0, gt=0, description="resident memory limit of the agent, MB")
    cpu_max_percent: float = Field(10.0, gt=0, description="CPU limit, % of one core over `for_seconds`")
    fds_max: int = Field(50, ge=1, description="open file descriptors limit")
    for_seconds: float = Field(120.0, ge=0, description="how long a limit must be exceeded (or met again)")


class LogSettings(Section):
    """The agent's own log."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Settings(BaseSettings):
    """Every setting of the agent, built once and passed down."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    interval: float = Field(10.0, ge=0.05, le=3600, description="seconds between collections")
    # Roots, so the agent can run in a container with the host mounted at /host.
    procfs: Path = Path("/proc")
    sysfs: Path = Path("/sys")
    host_root: Path = Path("/")
    # Overrides host.name in the resource and the host's name in alerts.
    hostname: str | None = None

    prometheus: PrometheusSettings = PrometheusSettings()
    otlp: OtlpSettings = OtlpSettings()
    store: StoreSettings = StoreSettings()
    budget: BudgetSettings = BudgetSettings()
    log: LogSettings = LogSettings()
    instrumentation: InstrumentationSettings = InstrumentationSettings()
    analyzers: AnalyzersSettings = AnalyzersSettings()
    alerts: AlertsSettings = AlertsSettings()
    nats: NatsSettings = NatsSettings()
    logs: LogsSettings = LogsSettings()
    gpu: GpuSettings = GpuSettings()
    health: HealthSettings = HealthSettings()
    api: ApiSettings = ApiSettings()
    hub: HubSettings = HubSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A bare Settings(): keyword arguments > environment > defaults; no dotenv, no secrets dir.
        # The agent builds through load_settings(), which names every source explicitly.
        if _EXPLICIT.get():
            return (init_settings,)
        return (init_settings, env_settings)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source over an explicit mapping (a copy of the environment plus secrets)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        # Settings are case-insensitive: the source looks names up lower-cased.
        self.env_vars = {key.lower(): value for key, value in environ.items()}


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Return `low` updated by `high`, tables merged key by key (how sources layer)."""
    out = dict(low)
    for key, value in high.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = _merge(below, value)
        else:
            out[key] = value
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    """Parse the settings file; a missing or malformed file is a one-line ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path}: not found") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid UTF-8 (byte {exc.start})") from exc
    except RecursionError as exc:
        raise ConfigError(f"config file {path}: nested too deeply") from exc


def _env_names(model: type[BaseModel], prefix: str) -> Iterator[str]:
    """Yield every environment variable name the model accepts (upper case)."""
    for name, field in model.model_fields.items():
        env = f"{prefix}{name}".upper()
        yield env
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _env_names(annotation, env + ENV_NESTED)


def _check_unknown_env(environ: Mapping[str, str], known: set[str]) -> None:
    """Refuse SYSOPS_* variables that name no setting (a typo would otherwise be ignored)."""
    known = known | {CONFIG_ENV}
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        # Secrets may come from files: SYSOPS_X__TOKEN_FILE stands for SYSOPS_X__TOKEN.
        if upper.endswith("_FILE") and upper.removesuffix("_FILE") in known:
            continue
        raise ConfigError(f"{key}: unknown setting; accepted: {', '.join(_accepted_keys(upper))}")


def _accepted_keys(env: str) -> list[str]:
    """List the keys of the deepest section an unknown variable points into."""
    model: type[BaseModel] = Settings
    parts = env.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED)
    prefix = ENV_PREFIX
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
        prefix += part.upper() + ENV_NESTED
    return [prefix + name.upper() for name in sorted(model.model_fields)]


def _describe(loc: tuple[int | str, ...], file: Path | None, environ: Mapping[str, str]) -> str:
    """Name a failing field the way the user wrote it: its variable, or its key in the file."""
    dotted = ".".join(str(part) for part in loc)
    env = ENV_PREFIX + ENV_NESTED.join(str(part) for part in loc).upper()
    top_env = ENV_PREFIX + str(loc[0]).upper() if loc else ""
    if env in environ:
        return env
    if top_env in environ and len(loc) > 1:
        return f"{top_env} ({dotted})"
    if file is not None:
        return f"{dotted} in {file}"
    return dotted


def _format_error(exc: ValidationError, file: Path | None, environ: Mapping[str, str]) -> str:
    """Turn the first validation error into one line: the field, what was given, what is accepted."""
    err = exc.errors()[0]
    where = _describe(tuple(err["loc"]), file, environ)
    given = err.get("input")
    shown = "" if isinstance(given, dict) or err["type"] == "extra_forbidden" else f" (got {given!r})"
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown setting"
    extra = f"; {len(exc.errors()) - 1} more error(s)" if len(exc.errors()) > 1 else ""
    return f"{where}: {err['msg']}{shown}{extra}"


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the file, the environment and command-line overrides.

    Raise ConfigError with one line naming the field on any invalid or unknown input.
    """
    from ._otel import apply_otel_environment  # OTEL_SDK_DISABLED, OTEL_METRICS_EXPORTER, ...

    env = dict(os.environ) if environ is None else environ
    if config is None and env.get(CONFIG_ENV):
        config = Path(env[CONFIG_ENV])
    known = set(_env_names(Settings, ENV_PREFIX))
    _check_unknown_env(env, known)
    resolved = _normalise_complex_env(_read_secret_files(env, known))
    data = _read_toml(config) if config is not None else {}
    try:
        # Defaults < file < environment < command line; os.environ is read (copied), never written.
        from_env = _MappingEnvSource(Settings, resolved)()
        token = _EXPLICIT.set(True)
        try:
            settings = Settings.model_validate(_merge(_merge(data, from_env), dict(overrides or {})))
        finally:
            _EXPLICIT.reset(token)
        return apply_otel_environment(settings, env)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, config, env)) from exc
    except SettingsError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from exc
    except RecursionError as exc:
        raise ConfigError(f"settings nested too deeply{f' in {config}' if config else ''}") from exc


def check_roots(
    settings: Settings, config: Path | None = None, environ: Mapping[str, str] | None = None
) -> None:
    """Refuse a procfs root without `stat` or a sysfs root without `devices` (a typo'd mount).

    A wrong root otherwise starts an agent that collects nothing and reports healthy.
    """
    env = dict(os.environ) if environ is None else environ
    for key, path, marker, kind in (
        ("procfs", settings.procfs, "stat", "procfs"),
        ("sysfs", settings.sysfs, "devices", "sysfs"),
    ):
        if not (path / marker).exists():
            where = _describe((key,), config if config is not None and _in_toml(config, key) else None, env)
            raise ConfigError(f"{where}: {str(path)!r} does not look like a {kind} (no {marker})")


def _in_toml(config: Path, key: str) -> bool:
    try:
        return key in _read_toml(config)
    except ConfigError:
        return False


def _complex_kind(annotation: Any) -> str | None:
    """Return "list" for a list of strings, "json" for another complex type, None for a scalar."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        kinds = {_complex_kind(arg) for arg in typing.get_args(annotation) if arg is not type(None)}
        return "json" if "json" in kinds else ("list" if "list" in kinds else None)
    if origin in (list, set, frozenset, tuple):
        args = typing.get_args(annotation)
        return "list" if args and all(a is str or a is Ellipsis for a in args) else "json"
    if origin is dict or annotation is dict:
        return "json"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "json"
    return None


def _field_of(env: str) -> Any:
    """Return the annotation of the field a SYSOPS_* variable names (None when it names none)."""
    model: type[BaseModel] = Settings
    parts = env.removeprefix(ENV_PREFIX).lower().split(ENV_NESTED)
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        if index == len(parts) - 1:
            return field.annotation
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return None


def is_string_list(dotted: str) -> bool:
    """Return whether a dotted key (`instrumentation.disabled`) names a list-of-strings setting."""
    env = ENV_PREFIX + ENV_NESTED.join(dotted.split(".")).upper()
    return _complex_kind(_field_of(env)) == "list"


def _normalise_complex_env(environ: Mapping[str, str]) -> Mapping[str, str]:
    """Check the JSON of every complex SYSOPS_* variable; a list of strings may also be `a,b,c`.

    A bad value is a one-line ConfigError naming the variable (pydantic-settings would raise a
    traceback-shaped error naming only the field).
    """
    out: dict[str, str] | None = None
    for key, value in environ.items():
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX) or upper == CONFIG_ENV:
            continue
        kind = _complex_kind(_field_of(upper))
        if kind is None:
            continue
        try:
            json.loads(value)
            continue
        except RecursionError as exc:
            raise ConfigError(f"{key}: JSON nested too deeply") from exc
        except ValueError as exc:
            if kind != "list" or value.lstrip().startswith("["):
                msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
                col = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
                raise ConfigError(f"{key}: not valid JSON ({msg}{col})") from exc
        # A plain comma-separated list: "gpu" or "gpu,cgroup".
        items = [item.strip() for item in value.split(",") if item.strip()]
        out = dict(environ) if out is None else out
        out[key] = json.dumps(items)
    return environ if out is None else out


def _read_secret_files(environ: Mapping[str, str], known: set[str]) -> Mapping[str, str]:
    """Replace each SYSOPS_<KEY>_FILE naming a setting with SYSOPS_<KEY> read from that file.

    The convention of Docker and Kubernetes secrets: the value lives in a mounted file, not in the
    environment. A trailing newline is dropped. Settings with their own `*_file` field (alert
    channels, the NATS seed) are fields like any other and never reach this path.
    """
    out: dict[str, str] | None = None
    for key, value in environ.items():
        upper = key.upper()
        target = upper.removesuffix("_FILE")
        if not upper.startswith(ENV_PREFIX) or upper in known or target == upper or target not in known:
            continue
        try:
            secret = Path(value).read_text(encoding="utf-8").removesuffix("\n")
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {value} ({exc.strerror})") from exc
        out = dict(environ) if out is None else out
        out.pop(key)
        out.setdefault(target, secret)
    return environ if out is None else out
