"""Token authentication and TLS (CA and certificates made here) against a real nats-server."""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from otel_sysops.agent import Agent
from otel_sysops.bridge import NatsBridge
from otel_sysops.bridge._connect import classify
from otel_sysops.errors import ConfigError
from otel_sysops.settings import Settings
from tests.bridge.conftest import NatsServer, nats_server_binary
from tests.bridge.support import FakeAlertManager, run, wait_until

pytestmark = pytest.mark.slow

FAST = {"heartbeat_interval": 0.2, "reconnect_wait": 0.2, "connect_timeout": 2.0}


def _agent(make_settings: Callable[..., Settings], **nats_opts: Any) -> Agent:
    agent = Agent(make_settings(hostname="secure-1", nats={**FAST, **nats_opts}))
    agent.alerts = FakeAlertManager()
    agent.pipeline.tick()
    return agent


def _beats(server_url: str, bridge: NatsBridge, **client: Any) -> None:
    """Run the bridge until a subscriber (with `client` credentials) has seen two heartbeats."""

    async def main() -> None:
        nc = await nats.connect(server_url, **client)
        beats: list[Any] = []

        async def cb(msg: Any) -> None:
            beats.append(json.loads(msg.data))

        await nc.subscribe("sysops.secure-1.heartbeat", cb=cb)
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await wait_until(lambda: len(beats) >= 2)
            tg.cancel_scope.cancel()
        await nc.close()
        assert beats[-1]["bridge"]["connected"] is True

    run(main)


def test_token_auth(
    nats_factory: list[NatsServer], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    server = NatsServer(nats_server_binary(), tmp_path / "n", 'authorization { token: "s3cret-t0ken" }')
    nats_factory.append(server)
    server.start()
    agent = _agent(make_settings, url=server.url, token="s3cret-t0ken")
    assert agent.settings.nats.token is not None
    assert "s3cret" not in repr(agent.settings.nats)  # a SecretStr never shows in logs or reprs
    bridge = NatsBridge(agent.settings.nats, "secure-1", agent)
    _beats(server.url, bridge, token="s3cret-t0ken")


def test_wrong_token_is_one_clear_error_not_a_crash_loop(
    nats_factory: list[NatsServer],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = NatsServer(nats_server_binary(), tmp_path / "n", 'authorization { token: "right" }')
    nats_factory.append(server)
    server.start()
    agent = _agent(make_settings, url=server.url, token="wrong", max_backoff=1.0)
    bridge = NatsBridge(agent.settings.nats, "secure-1", agent)
    caplog.set_level(logging.DEBUG, logger="otel_sysops")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(bridge.run)
            await anyio.sleep(3.0)
            tg.cancel_scope.cancel()

    run(main)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("otel_sysops")]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    message = errors[0].getMessage()
    assert errors[0].levelno == logging.ERROR
    assert "refused the credentials" in message
    assert "nats.token" in message
    assert "wrong" not in message  # the secret itself is never logged
    assert bridge.last_error is not None
    assert bridge.last_error.kind == "auth"
    # Backoff: 0.2, 0.4, 0.8, 1.0, 1.0 ... seconds, so a handful of attempts in 3 s, not hundreds.
    assert 2 <= bridge.stats["connect_failures"] <= 8
    assert bridge.stats["connects"] == 0


def _certificates(directory: Path) -> dict[str, Path]:
    """Write a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    now = datetime.datetime.now(datetime.UTC)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def write(name: str, cert: x509.Certificate, private: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}-key.pem").write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    ca_key = key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sysops test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca, ca_key)

    def leaf(name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> None:
        private = key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        write(name, cert, private)

    from cryptography.x509.oid import ExtendedKeyUsageOID

    leaf(
        "server",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")],
    )
    leaf("client", ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName("secure-1")])
    return {name: directory / f"{name}.pem" for name in ("ca", "server", "client")} | {
        f"{name}-key": directory / f"{name}-key.pem" for name in ("server", "client")
    }


def test_mutual_tls(
    nats_factory: list[NatsServer], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    certs = _certificates(tmp_path)
    tls = (
        f'tls {{ cert_file: "{certs["server"]}"\n key_file: "{certs["server-key"]}"\n'
        f' ca_file: "{certs["ca"]}"\n verify: true }}'
    )
    server = NatsServer(nats_server_binary(), tmp_path / "n", tls)
    nats_factory.append(server)
    server.start()
    url = f"tls://127.0.0.1:{server.port}"
    agent = _agent(
        make_settings,
        url=url,
        tls_ca=str(certs["ca"]),
        tls_cert=str(certs["client"]),
        tls_key=str(certs["client-key"]),
    )
    bridge = NatsBridge(agent.settings.nats, "secure-1", agent)

    import ssl

    ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    ctx.load_cert_chain(str(certs["client"]), str(certs["client-key"]))
    _beats(url, bridge, tls=ctx)

    # Without the client certificate the server refuses the handshake: a clear TLS error.
    no_cert = _agent(make_settings, url=url, tls_ca=str(certs["ca"]), max_backoff=1.0)
    refused = NatsBridge(no_cert.settings.nats, "secure-1", no_cert)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(refused.run)
            await wait_until(lambda: refused.last_error is not None)
            tg.cancel_scope.cancel()

    run(main)
    assert refused.stats["connects"] == 0
    assert refused.last_error is not None
    assert "tls_cert" in str(refused.last_error)


def test_settings_errors_name_the_field(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="choose one way to authenticate"):
        make_settings(nats={"url": "nats://x:4222", "token": "t", "user": "u"})
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        make_settings(nats={"url": "nats://x:4222", "tls_cert": "/c.pem"})
    with pytest.raises(ConfigError, match=r"nats\.url.*scheme"):
        make_settings(nats={"url": "http://x:4222"})
    with pytest.raises(ConfigError, match=r"nats\.subject_prefix"):
        make_settings(nats={"subject_prefix": "bad prefix.*"})
    assert make_settings(nats={"url": "nats://a:1,nats://b:2"}).nats.servers() == [
        "nats://a:1",
        "nats://b:2",
    ]
    assert make_settings().nats.active is False
    assert make_settings(nats={"url": "nats://a:1"}).nats.active is True


@pytest.mark.parametrize("as_file", [False, True])
def test_nkey_auth(
    nats_factory: list[NatsServer],
    tmp_path: Path,
    make_settings: Callable[..., Settings],
    as_file: bool,
) -> None:
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    server = NatsServer(
        nats_server_binary(), tmp_path / "n", f'authorization {{ users = [ {{ nkey: "{public}" }} ] }}'
    )
    nats_factory.append(server)
    server.start()
    if as_file:
        seed_file = tmp_path / "agent.nk"
        seed_file.write_bytes(seed + b"\n")
        agent = _agent(make_settings, url=server.url, nkey_seed_file=str(seed_file))
    else:
        agent = _agent(make_settings, url=server.url, nkey_seed=seed.decode())
    bridge = NatsBridge(agent.settings.nats, "secure-1", agent)
    _beats(server.url, bridge, nkeys_seed_str=seed.decode())


def test_a_dropped_tls_connection_points_at_the_client_certificate() -> None:
    # The refusal of a client certificate reaches the client as an EOF or, when the server's close
    # beats the client's next read, as a reset: both name the settings to check.
    dropped = (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe"))
    for exc in (*dropped, EOFError("unexpected EOF")):
        assert "tls_cert" in str(classify(exc, ["tls://n:4222"], tls=True))
        assert "tls_cert" not in str(classify(exc, ["nats://n:4222"], tls=False))
