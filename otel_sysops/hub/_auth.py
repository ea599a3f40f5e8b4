"""Who is calling: API keys (stored as SHA-256 hashes), optional JWT bearer tokens, roles, rate limits.

Keys are 32 random bytes, so a plain SHA-256 is enough to store them (a slow password hash
guards guessable secrets; these are not guessable). A JWT is accepted when `hub.jwt_secret`
(HS256) or `hub.jwks_url` (RS256/ES256 keys fetched from the URL) is set; its role comes from
the `hub.jwt_role_claim` claim (a string or a list; the highest known role wins).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from otel_sysops.settings import HubSettings

from ._store import Store

ROLES = ("viewer", "operator", "admin")
KEY_PREFIX = "osh_"


def rank(role: str) -> int:
    """Return a role's rank (viewer < operator < admin); -1 for none."""
    return ROLES.index(role) if role in ROLES else -1


def digest(key: str) -> str:
    """Return the stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """Return (id, key): a fresh API key and the short id shown in listings and logs."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: str
    via: str  # "key", "jwt", "anonymous"


class AuthError(Exception):
    """Credentials were given and are not valid."""


class Authenticator:
    """Turn an Authorization header (or `?token=` for event streams) into a Principal."""

    def __init__(self, settings: HubSettings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._admin = digest(settings.admin_key.get_secret_value()) if settings.admin_key else None
        self._jwks: Any = None
        if settings.jwks_url:
            import jwt

            # A dead key server fails a request in 5 s, not the library's 30.
            self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=5)

    def anonymous(self) -> Principal | None:
        """Return the caller without credentials, or None when reading needs them too."""
        if self.settings.anonymous_role == "none":
            return None
        return Principal("anonymous", self.settings.anonymous_role, "anonymous")

    def may_fetch(self, token: str) -> bool:
        """Return whether checking `token` may fetch the JWKS key set (blocking I/O)."""
        return self._jwks is not None and not token.startswith(KEY_PREFIX) and token.count(".") == 2

    def authenticate(self, token: str) -> Principal:
        """Return who holds `token` (an API key or a JWT); raise AuthError otherwise."""
        if token.startswith(KEY_PREFIX) or token.count(".") != 2:
            return self._key(token)
        return self._jwt(token)

    def _key(self, token: str) -> Principal:
        hashed = digest(token)
        if self._admin is not None and hmac.compare_digest(hashed, self._admin):
            return Principal("admin-key", "admin", "key")
        found = self.store.key_by_hash(hashed)
        if found is None:
            raise AuthError("unknown API key")
        return Principal(found[1], found[2], "key")

    def _jwt(self, token: str) -> Principal:
        if self.settings.jwt_secret is None and self._jwks is None:
            raise AuthError("JWT bearer tokens are not enabled (hub.jwt_secret or hub.jwks_url)")
        import jwt

        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "PS256", "EdDSA"]
            else:
                assert self.settings.jwt_secret is not None
                key, algorithms = self.settings.jwt_secret.get_secret_value(), ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        raw = claims.get(self.settings.jwt_role_claim, "viewer")
        roles = raw if isinstance(raw, list) else [raw]
        role = max((str(r) for r in roles if str(r) in ROLES), key=rank, default="")
        if not role:
            raise AuthError(f"token has no known role in claim {self.settings.jwt_role_claim!r}")
        return Principal(str(claims.get("sub", "jwt")), role, "jwt")


class RateLimiter:
    """A token bucket per caller: `rate` requests per second sustained, `burst` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, who: str) -> float:
        """Take one token for `who`; return 0 when allowed, else the seconds until one is free."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                if len(self._buckets) > 100_000:
                    self._buckets.clear()  # bounded: a flood of client addresses resets the buckets
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate
