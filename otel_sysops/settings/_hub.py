"""Settings of the fleet hub (`[hub]`, `SYSOPS_HUB__*`), read by `otel-sysops hub` only."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ._base import Section

_STREAM_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _http_url(value: str | None, key: str) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{key}: expected an absolute http(s) URL")
    return value.rstrip("/")


class HubSettings(Section):
    """Options of the hub section: its listener, database, NATS consumer, auth and UI links."""

    # The REST API, the event stream and the web UI.
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=0, le=65535)
    # A file path, sqlite:///path, or postgresql://user:pass@host/db; None: hub.db in the state directory.
    database: str | None = None
    state_dir: Path = Field(Path("~/.local/state/otel-sysops"), description="where hub.db goes by default")
    # NATS server when `nats.url` is unset.
    nats_url: str = "nats://127.0.0.1:4222"
    # JetStream: the streams the hub reads (made or updated at start when `create_streams`).
    # The name docs/nats.md uses for the alert stream: an existing one is widened to the inventory.
    stream: str = "SYSOPS_ALERTS"
    heartbeat_stream: str = "SYSOPS_HEARTBEATS"
    create_streams: bool = True
    stream_max_age: float = Field(30 * 86400.0, gt=0, description="seconds alerts and inventory are kept")
    durable: str = "sysops-hub"
    fetch_batch: int = Field(500, ge=1, le=10_000)
    # A host is down after this many of its own heartbeat intervals without one.
    missed_heartbeats: int = Field(3, ge=1, le=1000)
    check_interval: float = Field(1.0, gt=0, le=60, description="seconds between down checks")
    # Alert history kept in the database.
    history_days: float = Field(90.0, gt=0, le=3650)
    control_timeout: float = Field(5.0, gt=0, le=120, description="seconds to wait for an agent's reply")

    # -- access -------------------------------------------------------------------------------
    # Role of a request without credentials: "none" requires a key or token for reading too.
    anonymous_role: Literal["none", "viewer"] = "viewer"
    # An admin API key to accept (secret), or a file holding it; more keys: `otel-sysops hub keys add`.
    admin_key: SecretStr | None = None
    admin_key_file: Path | None = None
    jwt_secret: SecretStr | None = None
    jwt_secret_file: Path | None = None
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_role_claim: str = "role"
    # Per key (or per client address without one): sustained requests per second, and the burst.
    rate_limit: float = Field(50.0, gt=0, le=100_000)
    rate_burst: int = Field(100, ge=1, le=1_000_000)

    # -- charts and links ---------------------------------------------------------------------
    prometheus_url: str | None = None
    # Where the agents' own API answers, for charts without Prometheus; {host} is the host name.
    agent_url_template: str = "http://{host}:9464"
    # A Grafana link per host, e.g. https://grafana.example.net/d/sysops-host?var-host={host}
    grafana_url_template: str | None = None
    # Charts on the host page: metric names as the chart source knows them (Prometheus names when
    # prometheus_url is set), and the Prometheus label that carries the host name. Unset: CPU,
    # memory and filesystem utilisation, named for the source.
    chart_metrics: tuple[str, ...] | None = None
    prometheus_host_label: str = "host_name"

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in ("admin_key", "jwt_secret"):
            path = data.get(f"{key}_file")
            if path not in (None, ""):
                try:
                    out[key] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ValueError(f"{key}_file: cannot read {path} ({exc.strerror})") from exc
        return out

    @field_validator("stream", "heartbeat_stream", "durable")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value or not set(value) <= _STREAM_NAME_CHARS:
            raise ValueError("letters, digits, '_' and '-' only")
        return value

    @field_validator("prometheus_url", "jwks_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value, "url")

    @field_validator("database")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        if value is None or "://" not in value:
            return value
        scheme = value.split("://", 1)[0]
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("expected a path, sqlite:///path or postgresql://...")
        return value

    @field_validator("agent_url_template", "grafana_url_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and "{host}" not in value:
            raise ValueError("must contain {host}")
        return value

    @model_validator(mode="after")
    def _check(self) -> HubSettings:
        if self.stream == self.heartbeat_stream:
            raise ValueError("stream and heartbeat_stream must differ")
        if self.jwt_secret is not None and self.jwks_url is not None:
            raise ValueError("give jwt_secret or jwks_url, not both")
        return self

    def database_url(self) -> str:
        """Return the database as a URL (sqlite:///... or postgresql://...)."""
        if self.database is None:
            return f"sqlite:///{self.state_dir.expanduser() / 'hub.db'}"
        if "://" not in self.database:
            return f"sqlite:///{Path(self.database).expanduser()}"
        return self.database
