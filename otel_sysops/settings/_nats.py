"""Settings of the NATS fleet bridge (`[nats]`, `SYSOPS_NATS__*`)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from ._base import Section

# NATS subject tokens: no whitespace, no dots inside a token, no wildcards.
_PREFIX = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class NatsSettings(Section):
    """Options of the nats section: the servers, credentials, subjects and delivery."""

    # None: on when `url` is set.
    enabled: bool | None = None
    # One server or several, comma-separated: "nats://a:4222,nats://b:4222" (tls:// for TLS).
    url: str | None = None
    subject_prefix: str = "sysops"

    # -- credentials (at most one of token, user/password, nkey seed, credentials file) -------
    token: SecretStr | None = None
    user: str | None = None
    password: SecretStr | None = None
    # An NKey seed ("SU..."), or a file holding it.
    nkey_seed: SecretStr | None = None
    nkey_seed_file: Path | None = None
    # A decentralized-auth credentials file (JWT + seed), as `nsc` writes it.
    credentials: Path | None = None
    # Without credentials any client of the server could silence alerts or reload the agent:
    # silence and reload requests are refused unless the connection is authenticated or this is on.
    allow_anonymous_control: bool = False

    # -- TLS -------------------------------------------------------------------------------
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Name checked against the server certificate when it differs from the URL's host.
    tls_hostname: str | None = None

    # -- what is sent, and how often ----------------------------------------------------------
    heartbeat_interval: float = Field(60.0, gt=0, le=86400)
    # Inventory is recomputed this often and sent only when its hash changed ...
    inventory_interval: float = Field(300.0, gt=0, le=86400)
    # ... or when this long passed since it was last sent.
    inventory_force_interval: float = Field(3600.0, gt=0, le=7 * 86400)

    # -- delivery -----------------------------------------------------------------------------
    # Alerts (and the latest inventory) held while NATS is unreachable; the oldest is dropped past it.
    buffer_size: int = Field(1000, ge=1, le=1_000_000)
    # A directory where held messages are also written, so a restart loses nothing.
    spool_dir: Path | None = None
    # Look up JetStream streams covering the alert subject and publish there with acks.
    jetstream: bool = True
    publish_timeout: float = Field(5.0, gt=0, le=300)
    connect_timeout: float = Field(5.0, gt=0, le=300)
    # nats-py's own reconnects (per server) between our reconnect cycles.
    reconnect_wait: float = Field(2.0, gt=0, le=600)
    reconnect_attempts: int = Field(30, ge=1, le=100_000)
    # Our cycles back off exponentially up to this many seconds (bad credentials never spin).
    max_backoff: float = Field(300.0, gt=0, le=86400)

    @field_validator("subject_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("expected dot-separated tokens of letters, digits, '_' or '-' (e.g. sysops)")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for server in (s.strip() for s in value.split(",")):
            if not server:
                raise ValueError("empty server in the list; expected nats://host:port[,nats://...]")
            if "://" in server and server.split("://", 1)[0] not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"{server!r}: scheme must be nats://, tls://, ws:// or wss://")
        return value

    @model_validator(mode="after")
    def _check_credentials(self) -> NatsSettings:
        given = [
            name
            for name, on in (
                ("token", self.token is not None),
                ("user", self.user is not None or self.password is not None),
                ("nkey_seed", self.nkey_seed is not None or self.nkey_seed_file is not None),
                ("credentials", self.credentials is not None),
            )
            if on
        ]
        if len(given) > 1:
            raise ValueError(f"choose one way to authenticate, got {', '.join(given)}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together (the client certificate and its key)")
        return self

    @property
    def active(self) -> bool:
        """Return whether the bridge runs: explicitly enabled, or a URL given."""
        if self.enabled is None:
            return self.url is not None
        return self.enabled

    @property
    def authenticated(self) -> bool:
        """Return whether the connection carries credentials (a setting, or user info in every URL)."""
        if any(
            x is not None
            for x in (self.token, self.user, self.nkey_seed, self.nkey_seed_file, self.credentials)
        ):
            return True
        return bool(self.url) and all("@" in s.split("://", 1)[-1].split("/", 1)[0] for s in self.servers())

    def servers(self) -> list[str]:
        """Return the server URLs (the default local server when none is given)."""
        if not self.url:
            return ["nats://127.0.0.1:4222"]
        return [s.strip() for s in self.url.split(",")]
