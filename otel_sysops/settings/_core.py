"""The one `Settings` object: defaults < TOML file < environment < command line."""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from otel_sysops.errors import ConfigError

from ._alerts import AlertsSettings
from ._analyzers import AnalyzersSettings
from ._base import Section
from ._gpu import GpuSettings
from ._hub import HubSettings
from ._instrumentation import InstrumentationSettings
from ._logs import LogsSettings
from ._nats import NatsSettings

ENV_PREFIX = "SYSOPS_"
ENV_NESTED = "__"
# Read before the model is built: it says which file to load.
CONFIG_ENV = "SYSOPS_CONFIG"


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
    # Attempts per batch before it is dropped (and counted).
    max_attempts: int = Field(5, ge=1, le=100)


class StoreSettings(Section):
    """The in-process ring store the analyzers read."""

    raw_window: float = Field(3600.0, gt=0, description="seconds of raw points kept per series")
    rollup_window: float = Field(86400.0, gt=0, description="seconds of 1-minute rollups kept per series")
    max_series: int = Field(5000, ge=1)
    # Series not seen for this long are evicted, freeing their slot.
    evict_after: float = Field(900.0, gt=0)
    # SQLite file for rollups, so a restart keeps history; None keeps them in memory only.
    sqlite_path: Path | None = None


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
    log: LogSettings = LogSettings()
    instrumentation: InstrumentationSettings = InstrumentationSettings()
    analyzers: AnalyzersSettings = AnalyzersSettings()
    alerts: AlertsSettings = AlertsSettings()
    nats: NatsSettings = NatsSettings()
    logs: LogsSettings = LogsSettings()
    gpu: GpuSettings = GpuSettings()
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
        # CLI (init kwargs) > environment > file > defaults; no dotenv, no secrets dir.
        return (init_settings, env_settings, _FileSource(settings_cls, _FILE_DATA.get()))


class _FileData:
    """The parsed TOML of the file being loaded, handed to the settings source."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        return self._data

    def set(self, data: dict[str, Any]) -> None:
        self._data = data


_FILE_DATA = _FileData()


class _FileSource(PydanticBaseSettingsSource):
    """Serve the parsed TOML file as the lowest-priority source."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


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
    env = os.environ if environ is None else environ
    if config is None and env.get(CONFIG_ENV):
        config = Path(env[CONFIG_ENV])
    known = set(_env_names(Settings, ENV_PREFIX))
    _check_unknown_env(env, known)
    resolved = _read_secret_files(env, known)
    data = _read_toml(config) if config is not None else {}
    _FILE_DATA.set(data)
    try:
        if resolved is not os.environ:
            return _build_with_environ(resolved, dict(overrides or {}))
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, config, env)) from exc
    finally:
        _FILE_DATA.set({})


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


# Building against another environment swaps os.environ for a moment: one build at a time.
_ENVIRON_LOCK = threading.Lock()


def _build_with_environ(environ: Mapping[str, str], overrides: dict[str, Any]) -> Settings:
    """Build settings against an explicit environment (tests, reload checks, secret files)."""
    with _ENVIRON_LOCK:
        return _build_swapped(environ, overrides)


def _build_swapped(environ: Mapping[str, str], overrides: dict[str, Any]) -> Settings:
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(environ)
        return Settings(**overrides)
    finally:
        os.environ.clear()
        os.environ.update(saved)
