"""Settings of the alert manager (`[alerts]`, `SYSOPS_ALERTS__*`).

Channels come from `[[alerts.channels]]` in the file (or `SYSOPS_ALERTS__CHANNELS` as JSON), and
one more from `SYSOPS_ALERTS__CHANNEL__*` so a container can configure a channel by variables alone.
Every secret field `x` has a companion `x_file` that names a file holding it (Docker/Kubernetes
secrets); the file wins over the inline value.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from ._base import Section

SeverityName = Literal["info", "warning", "critical", "emergency"]
ChannelType = Literal["discord", "slack", "telegram", "email", "webhook", "syslog", "log", "alertmanager"]


def _read_secret(path: Path, field: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path} ({exc.strerror})") from exc


class _ChannelBase(Section):
    """What every channel has: a name, a floor severity, label matchers, delivery limits."""

    name: str = Field("", description="unique name; defaults to the type")
    min_severity: SeverityName = "warning"
    # Alert field/attribute/label -> value (shell-style globs allowed); all must match.
    matchers: dict[str, str] = {}
    timeout: float = Field(10.0, gt=0, le=300, description="seconds per delivery attempt")
    # Lift the https-only and public-address-only rules (local receivers, tests).
    allow_insecure: bool = False

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if not out.get("name") and out.get("type"):
            out["name"] = out["type"]
        for key, value in data.items():
            if (
                key.endswith("_file")
                and value not in (None, "")
                and key.removesuffix("_file") in cls.model_fields
            ):
                out[key.removesuffix("_file")] = _read_secret(Path(value), key)
        return out


def _check_url(url: SecretStr, allow_insecure: bool) -> None:
    parts = urlsplit(url.get_secret_value())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("url: expected an absolute http(s) URL")
    if parts.scheme != "https" and not allow_insecure:
        raise ValueError("url: must be https (set allow_insecure = true for a local receiver)")


class _UrlChannel(_ChannelBase):
    url: SecretStr
    url_file: Path | None = None

    @model_validator(mode="after")
    def _https(self) -> _UrlChannel:
        _check_url(self.url, self.allow_insecure)
        return self


class DiscordChannelSettings(_UrlChannel):
    """A Discord webhook (`https://discord.com/api/webhooks/...`)."""

    type: Literal["discord"]
    username: str = "otel-sysops"


class SlackChannelSettings(_UrlChannel):
    """A Slack incoming webhook (`https://hooks.slack.com/services/...`)."""

    type: Literal["slack"]


class TelegramChannelSettings(_ChannelBase):
    """A Telegram bot: `sendMessage` to one chat."""

    type: Literal["telegram"]
    token: SecretStr
    token_file: Path | None = None
    chat_id: str
    api_url: str = "https://api.telegram.org"

    @model_validator(mode="after")
    def _https(self) -> TelegramChannelSettings:
        _check_url(SecretStr(self.api_url), self.allow_insecure)
        return self


class EmailChannelSettings(_ChannelBase):
    """Mail over SMTP: STARTTLS (default, port 587), implicit TLS (465) or plain (needs allow_insecure)."""

    type: Literal["email"]
    host: str
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str = Field(..., alias="from", description="the From address")
    to: list[str] = Field(..., min_length=1)
    # A CA bundle to trust instead of the system store (a private relay's certificate).
    ca_file: Path | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _plain_needs_insecure(self) -> EmailChannelSettings:
        if self.security == "none" and not self.allow_insecure:
            raise ValueError("security: 'none' sends mail in clear text; set allow_insecure = true")
        return self

    @property
    def effective_port(self) -> int:
        """Return the port, defaulting by security mode."""
        return self.port or {"starttls": 587, "tls": 465, "none": 25}[self.security]


class WebhookChannelSettings(_UrlChannel):
    """A generic webhook: JSON POST, custom headers, optional HMAC-SHA256 signature."""

    type: Literal["webhook"]
    headers: dict[str, SecretStr] = {}
    # Signs the raw body: `<signature_header>: sha256=<hex HMAC-SHA256(secret, body)>`.
    secret: SecretStr | None = None
    secret_file: Path | None = None
    signature_header: str = "X-Sysops-Signature"
    # "sysops": the agent's own JSON body; "alertmanager": Alertmanager's webhook body (version 4).
    format: Literal["sysops", "alertmanager"] = "sysops"


class AlertmanagerChannelSettings(_ChannelBase):
    """Alertmanager's API: alerts posted to `/api/v2/alerts` of every URL, re-posted while firing."""

    type: Literal["alertmanager"]
    # Alertmanager forwards, groups and routes: every severity goes there by default.
    min_severity: SeverityName = "info"
    # Base URLs of the Alertmanagers (`http://alertmanager:9093`); each gets every alert.
    urls: list[str] = Field(..., min_length=1)
    headers: dict[str, SecretStr] = {}
    # Seconds between re-posts of the alerts that fire (firing alerts are valid 4 intervals).
    resend_interval: float = Field(60.0, ge=1, le=3600)
    # A CA bundle to trust instead of the system store.
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _https(self) -> AlertmanagerChannelSettings:
        for url in self.urls:
            try:
                _check_url(SecretStr(url), self.allow_insecure)
            except ValueError as exc:
                raise ValueError(f"urls: {url}: {str(exc).removeprefix('url: ')}") from None
        return self


class SyslogChannelSettings(_ChannelBase):
    """RFC 5424 messages to a syslog receiver over UDP, TCP (octet-counted) or a unix socket."""

    type: Literal["syslog"]
    transport: Literal["udp", "tcp", "unix"] = "udp"
    # host:port for udp/tcp, a socket path for unix.
    address: str = "127.0.0.1:514"
    facility: int = Field(3, ge=0, le=23, description="3 = daemon")
    app_name: str = "otel-sysops"

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not value:
            raise ValueError("address: must not be empty")
        return value

    @model_validator(mode="after")
    def _port(self) -> SyslogChannelSettings:
        if self.transport != "unix":
            host, sep, port = self.address.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError("address: expected host:port for udp/tcp")
        return self


class LogChannelSettings(_ChannelBase):
    """The agent's own log (FIRING/RESOLVED lines)."""

    type: Literal["log"]
    min_severity: SeverityName = "info"


ChannelSettings = Annotated[
    DiscordChannelSettings
    | SlackChannelSettings
    | TelegramChannelSettings
    | EmailChannelSettings
    | WebhookChannelSettings
    | SyslogChannelSettings
    | LogChannelSettings
    | AlertmanagerChannelSettings,
    Field(discriminator="type"),
]
_CHANNEL_ADAPTER: TypeAdapter[ChannelSettings] = TypeAdapter(ChannelSettings)


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    return value


class EnvChannelSettings(Section):
    """One channel from flat variables (`SYSOPS_ALERTS__CHANNEL__TYPE=slack`, `..__URL_FILE=/run/secrets/x`).

    Holds the union of every channel's keys; `type` unset means no such channel. It is checked
    as the typed channel when the settings are built.
    """

    type: ChannelType | None = None
    name: str | None = None
    min_severity: SeverityName | None = None
    matchers: dict[str, str] | None = None
    timeout: float | None = None
    allow_insecure: bool | None = None
    url: SecretStr | None = None
    url_file: Path | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    chat_id: str | None = None
    api_url: str | None = None
    host: str | None = None
    port: int | None = None
    security: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    sender: str | None = None
    to: list[str] | None = None
    ca_file: Path | None = None
    headers: dict[str, SecretStr] | None = None
    secret: SecretStr | None = None
    secret_file: Path | None = None
    signature_header: str | None = None
    transport: str | None = None
    address: str | None = None
    facility: int | None = None
    app_name: str | None = None
    format: str | None = None
    urls: list[str] | None = None
    resend_interval: float | None = None

    def typed(self) -> ChannelSettings | None:
        """Return the channel these variables describe (None without a type)."""
        if self.type is None:
            return None
        data: dict[str, Any] = {}
        for key, value in self:
            if value is None:
                continue
            data[key] = _reveal(value)
        return _CHANNEL_ADAPTER.validate_python(data)


class DedupSettings(Section):
    """Seconds during which the same fingerprint at the same severity is not notified again (0: never)."""

    emergency: float = Field(0.0, ge=0)
    critical: float = Field(60.0, ge=0)
    warning: float = Field(300.0, ge=0)
    info: float = Field(600.0, ge=0)


class RateLimitSettings(Section):
    """A token bucket per chat channel (Discord, Slack, Telegram, email): `burst` messages at once,
    then one per `refill_seconds`. Machine channels (NATS, webhook, syslog, log) are not limited."""

    burst: int = Field(10, ge=1, le=10_000)
    refill_seconds: float = Field(60.0, gt=0)


class SilenceSettings(Section):
    """A silence in the file: alerts matching every matcher are not notified until `expires`."""

    matchers: dict[str, str] = Field(..., min_length=1)
    expires: datetime
    comment: str = ""

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires: give a time zone, e.g. 2026-12-01T00:00:00Z")
        return value


class AlertsSettings(Section):
    """Where alerts go; with no channel configured they go to the log."""

    enabled: bool = True
    channels: list[ChannelSettings] = []
    channel: EnvChannelSettings = EnvChannelSettings()
    dedup: DedupSettings = DedupSettings()
    # Seconds between reminders of an alert that keeps firing; 0 sends no reminders.
    reminder_interval: float = Field(3600.0, ge=0)
    rate_limit: RateLimitSettings = RateLimitSettings()
    # Alerts of one host arriving within this many seconds go out as one message.
    group_window: float = Field(1.0, ge=0, le=600)
    # A channel failing this many deliveries in a row is skipped for `breaker_reset` seconds.
    breaker_threshold: int = Field(3, ge=1, le=1000)
    breaker_reset: float = Field(60.0, gt=0)
    # Alerts waiting per channel; past this they are counted and summarised, not queued.
    queue_size: int = Field(10_000, ge=1)
    silences: list[SilenceSettings] = []

    @model_validator(mode="after")
    def _check_channels(self) -> AlertsSettings:
        try:
            self.channel.typed()
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"][1:]) or "type"
            raise ValueError(f"channel.{loc}: {err['msg']}") from None
        names = [c.name for c in self.all_channels()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channels: duplicate name(s) {', '.join(dupes)}; give each a unique name")
        return self

    def all_channels(self) -> list[ChannelSettings]:
        """Return the configured channels (file, then environment); a log channel when there is none."""
        channels: list[ChannelSettings] = list(self.channels)
        env = self.channel.typed()
        if env is not None:
            channels.append(env)
        if not channels:
            channels.append(LogChannelSettings(type="log"))
        return channels
