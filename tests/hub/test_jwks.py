"""JWT bearer tokens checked against a key set served over HTTP (hub.jwks_url), as an IdP serves it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.bridge.conftest import NatsServer
from tests.hub.conftest import GetServer, RunningHub

jwt = pytest.importorskip("jwt")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")


class KeyServer:
    """An HTTP server answering /jwks.json with the public keys given; `hold` makes it hang."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        self.hold = threading.Event()
        self.held = threading.Event()  # a request is waiting on `hold`
        self.release = threading.Event()
        self.server = GetServer(self._answer)
        self.url = f"http://{self.server.address}/jwks.json"

    def _answer(self) -> tuple[bytes, str]:
        self.fetches += 1
        if self.hold.is_set():
            self.held.set()
            self.release.wait(30)
        return json.dumps({"keys": self.keys}).encode(), "application/json"

    def close(self) -> None:
        self.release.set()
        self.server.close()


def _key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(private: Any, kid: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return {**doc, "kid": kid, "use": "sig", "alg": "RS256"}


def _bearer(private: Any, kid: str, **claims: Any) -> dict[str, str]:
    body = {"sub": "alice", "exp": time.time() + 60, **claims}
    token = jwt.encode(body, private, algorithm="RS256", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """Sign by hand: PyJWT itself refuses a PEM key as an HMAC secret."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    signed = f"{part(header)}.{part(claims)}"
    mac = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.fixture
def key_server() -> Iterator[Callable[[list[dict[str, Any]]], KeyServer]]:
    servers: list[KeyServer] = []

    def start(keys: list[dict[str, Any]]) -> KeyServer:
        servers.append(KeyServer(keys))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_tokens_signed_by_the_identity_providers_key_are_accepted(
    nats_server: NatsServer,
    start_hub: Callable[..., RunningHub],
    key_server: Callable[[list[dict[str, Any]]], KeyServer],
) -> None:
    signer, stranger = _key(), _key()
    keys = key_server([_jwk(signer, "k1")])
    hub = start_hub(nats_server.url, jwks_url=keys.url, anonymous_role="none")

    you = hub.client.get("/api/v1/status", headers=_bearer(signer, "k1", role="viewer"))
    assert you.status_code == 200, you.text
    assert you.json()["you"] == {"name": "alice", "role": "viewer", "via": "jwt"}
    assert hub.client.get("/api/v1/keys", headers=_bearer(signer, "k1", role="admin")).status_code == 200
    assert hub.client.get("/api/v1/keys", headers=_bearer(signer, "k1", role="viewer")).status_code == 403

    # Another key under the same key id, a key id the set lacks, an expired token: refused.
    forged = hub.client.get("/api/v1/keys", headers=_bearer(stranger, "k1", role="admin"))
    assert forged.status_code == 401
    assert "invalid token" in forged.json()["error"]
    assert hub.client.get("/api/v1/keys", headers=_bearer(signer, "k9", role="admin")).status_code == 401
    expired = _bearer(signer, "k1", role="admin", exp=time.time() - 10)
    assert hub.client.get("/api/v1/keys", headers=expired).status_code == 401
    # The public key as an HMAC secret (algorithm confusion): HS256 is not accepted with a key set.
    public_pem = signer.public_key().public_bytes(
        encoding=serialization.Encoding.PEM, format=serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = _hs256(
        {"alg": "HS256", "typ": "JWT", "kid": "k1"}, {"role": "admin", "exp": time.time() + 60}, public_pem
    )
    assert hub.client.get("/api/v1/keys", headers={"Authorization": f"Bearer {confused}"}).status_code == 401
    assert keys.fetches >= 1


def test_a_hanging_key_server_does_not_stall_other_requests(
    nats_server: NatsServer,
    start_hub: Callable[..., RunningHub],
    key_server: Callable[[list[dict[str, Any]]], KeyServer],
) -> None:
    signer = _key()
    keys = key_server([_jwk(signer, "k1")])
    keys.hold.set()
    hub = start_hub(nats_server.url, jwks_url=keys.url, anonymous_role="none")
    with ThreadPoolExecutor(1) as pool:
        pending: Future[httpx.Response] = pool.submit(
            hub.client.get, "/api/v1/status", headers=_bearer(signer, "k1", role="viewer")
        )
        assert keys.held.wait(30)  # the hub is inside the fetch of the key set
        # Meanwhile the hub answers everyone else: its event loop is not the one waiting.
        other = httpx.get(f"{hub.url}/api/v1/status", headers=hub.admin(), timeout=30)
        assert other.status_code == 200
        assert not pending.done()
        keys.release.set()
        answered = pending.result(timeout=30)
    assert answered.status_code == 200, answered.text
    assert answered.json()["you"]["via"] == "jwt"
