"""Connecting to NATS from the settings: credentials, TLS, and one clear line per kind of failure."""

from __future__ import annotations

import importlib.util
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from otel_sysops.errors import ConfigError, MissingDependencyError, SysopsError
from otel_sysops.settings import NatsSettings

if TYPE_CHECKING:
    from nats.aio.client import Client


class NatsError(SysopsError):
    """The NATS server cannot be used: unreachable, credentials refused, TLS failed."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        # "auth", "tls", "unreachable", "config": what the operator has to fix.
        self.kind = kind


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """Return the client TLS context the settings ask for (tls:// URL, a CA or a client certificate)."""
    wants = (
        settings.tls_ca is not None
        or settings.tls_cert is not None
        or any(s.startswith(("tls://", "wss://")) for s in settings.servers())
    )
    if not wants:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
        if settings.tls_cert is not None and settings.tls_key is not None:
            ctx.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"nats.tls_ca / tls_cert / tls_key: cannot be loaded ({exc})") from exc
    return ctx


def _need_nkeys(field: str) -> None:
    # nats-py signs the server's nonce with the `nkeys` package, which it does not install itself.
    if importlib.util.find_spec("nkeys") is None:
        raise MissingDependencyError(f"{field} needs the nkeys package: pip install 'otel-sysops[nkeys]'")


def connect_options(settings: NatsSettings) -> dict[str, Any]:
    """Return the keyword arguments of `nats.connect` for the settings' servers, credentials and TLS."""
    opts: dict[str, Any] = {"servers": settings.servers()}
    if settings.token is not None:
        opts["token"] = settings.token.get_secret_value()
    if settings.user is not None:
        opts["user"] = settings.user
        opts["password"] = settings.password.get_secret_value() if settings.password else ""
    if settings.nkey_seed is not None:
        _need_nkeys("nats.nkey_seed")
        opts["nkeys_seed_str"] = settings.nkey_seed.get_secret_value()
    if settings.nkey_seed_file is not None:
        _need_nkeys("nats.nkey_seed_file")
        _must_read(settings.nkey_seed_file, "nats.nkey_seed_file")
        opts["nkeys_seed"] = str(settings.nkey_seed_file)
    if settings.credentials is not None:
        _need_nkeys("nats.credentials")
        _must_read(settings.credentials, "nats.credentials")
        opts["user_credentials"] = str(settings.credentials)
    ctx = tls_context(settings)
    if ctx is not None:
        opts["tls"] = ctx
        if settings.tls_hostname:
            opts["tls_hostname"] = settings.tls_hostname
    return opts


def _must_read(path: Any, field: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{field}: {path} cannot be read ({exc.strerror})") from exc


def classify(exc: BaseException, servers: list[str], tls: bool = False) -> NatsError:
    """Turn whatever nats-py or the socket raised into a NatsError naming what to fix."""
    import nats.errors

    where = ", ".join(servers)
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    auth_words = ("authorization", "authentication")
    if isinstance(exc, nats.errors.AuthorizationError) or any(w in lowered for w in auth_words):
        return NatsError(
            "auth",
            f"NATS at {where} refused the credentials ({text}); check nats.token, nats.user/password, "
            "nats.nkey_seed or nats.credentials",
        )
    if isinstance(exc, ssl.SSLError | nats.errors.SecureConnFailedError | nats.errors.SecureConnWantedError):
        return NatsError("tls", f"TLS with NATS at {where} failed ({text}); check nats.tls_ca / tls_cert")
    if isinstance(exc, nats.errors.SecureConnRequiredError):
        return NatsError("tls", f"NATS at {where} requires TLS; use a tls:// URL or set nats.tls_ca")
    if isinstance(exc, ConfigError):
        return NatsError("config", str(exc))
    hint = ""
    dropped = ("connection lost", "eof", "reset by peer", "broken pipe")
    cut = isinstance(exc, ConnectionResetError | BrokenPipeError) or any(w in lowered for w in dropped)
    if tls and cut:
        # TLS 1.3 servers drop the connection after the handshake when they refuse the client's
        # certificate: the client sees an EOF, or a reset or broken pipe when the close beats its
        # next read or write.
        hint = "; with TLS this is often a refused client certificate: check nats.tls_cert / tls_key"
    return NatsError("unreachable", f"cannot reach NATS at {where} ({text}){hint}")


ErrorCallback = Callable[[Exception], Awaitable[None]]


async def connect(
    settings: NatsSettings,
    *,
    name: str,
    error_cb: ErrorCallback | None = None,
    closed_cb: Callable[[], Awaitable[None]] | None = None,
    allow_reconnect: bool = False,
) -> Client:
    """Open one connection; raise NatsError (never loop here: the caller owns retries and backoff)."""
    try:
        import nats
        import nats.errors
    except ImportError as exc:  # pragma: no cover - nats-py is a base dependency
        raise MissingDependencyError("the NATS bridge needs nats-py: pip install otel-sysops") from exc

    try:
        opts = connect_options(settings)
    except (ConfigError, MissingDependencyError) as exc:
        raise NatsError("config", str(exc)) from exc

    async def _quiet(exc: Exception) -> None:
        # nats-py's default callback logs a traceback per failed attempt; we report once, above.
        if error_cb is not None:
            await error_cb(exc)

    try:
        return await nats.connect(
            **opts,
            name=name,
            connect_timeout=max(1, round(settings.connect_timeout)),
            allow_reconnect=allow_reconnect,
            # nats-py reads 0 as "forever" when picking a server: 1 means each server is tried twice.
            max_reconnect_attempts=-1 if allow_reconnect else 1,
            reconnect_time_wait=settings.reconnect_wait,
            ping_interval=20,
            max_outstanding_pings=3,
            error_cb=_quiet,
            closed_cb=closed_cb,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise classify(exc, settings.servers(), tls="tls" in opts) from exc
