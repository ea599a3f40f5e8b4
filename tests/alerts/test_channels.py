"""Every channel against a real local receiver: payload shape per service, HMAC, SMTP, syslog."""

from __future__ import annotations

import email
import hashlib
import hmac
import re
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import anyio
import pytest

from otel_sysops.alerts import ChannelError, Severity
from otel_sysops.alerts._email import EmailChannel
from otel_sysops.alerts._http import DiscordChannel, SlackChannel, TelegramChannel, WebhookChannel
from otel_sysops.alerts._syslog import SyslogChannel
from tests.alerts._servers import http_receiver, make_alert, notification, udp_receiver
from tests.conftest import free_port, need_binary

pytestmark = pytest.mark.slow

RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|\[.*?[^\\]\]) (?P<msg>.*)$"
)


def send(channel: Any, note: Any) -> None:
    async def go() -> None:
        try:
            await channel.send(note)
        finally:
            await channel.aclose()

    anyio.run(go)


def test_discord_embeds_with_severity_colours() -> None:
    with http_receiver(default_status=204, response_body=b"") as rx:
        channel = DiscordChannel("discord", Severity.INFO, rx.url + "/api/webhooks/1/tok", 5.0, True)
        send(
            channel,
            notification(
                make_alert("cpu", Severity.CRITICAL, value=0.97, threshold=0.9),
                make_alert("mem", Severity.WARNING, state="resolved", ends_at=1_700_000_100.0),
                suppressed={"warning": 3},
            ),
        )
        (req,) = rx.wait_for(1)
    assert req.path == "/api/webhooks/1/tok"
    body = req.json()
    assert body["username"] == "otel-sysops"
    assert "3 more alert(s) held back" in body["content"]
    cpu, mem = body["embeds"]
    assert cpu["title"] == "[FIRING] cpu"
    assert cpu["color"] == 0xE74C3C
    assert {"name": "value", "value": "0.97", "inline": True} in cpu["fields"]
    assert mem["title"] == "[RESOLVED] mem"
    assert mem["color"] == 0x2ECC71
    assert mem["timestamp"] == "2023-11-14T22:15:00Z"


def test_discord_caps_embeds_at_ten() -> None:
    with http_receiver(default_status=204, response_body=b"") as rx:
        channel = DiscordChannel("discord", Severity.INFO, rx.url + "/hook", 5.0, True)
        send(channel, notification(*(make_alert(f"r{i}") for i in range(25))))
        (req,) = rx.wait_for(1)
    body = req.json()
    assert len(body["embeds"]) == 10
    assert "showing 10 of 25" in body["content"]


def test_slack_blocks_escape_mrkdwn() -> None:
    with http_receiver(response_body=b"ok") as rx:
        channel = SlackChannel("slack", Severity.INFO, rx.url + "/services/T/B/x", 5.0, True)
        send(channel, notification(make_alert("disk", message="usage <90%> & rising")))
        (req,) = rx.wait_for(1)
    body = req.json()
    assert body["text"].startswith("[FIRING] warning: disk on web-1")
    header, section = body["blocks"]
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert "usage &lt;90%&gt; &amp; rising" in section["text"]["text"]


def test_telegram_send_message_html_escaped() -> None:
    with http_receiver(response_body=b'{"ok":true,"result":{}}') as rx:
        channel = TelegramChannel(
            "tg", Severity.INFO, "123:ABC", "-100042", 5.0, api_url=rx.url, allow_insecure=True
        )
        send(channel, notification(make_alert("cpu", message="<b>load</b> & more")))
        (req,) = rx.wait_for(1)
    assert req.path == "/bot123:ABC/sendMessage"
    body = req.json()
    assert body["chat_id"] == "-100042"
    assert body["parse_mode"] == "HTML"
    assert "&lt;b&gt;load&lt;/b&gt; &amp; more" in body["text"]
    assert body["text"].startswith("<b>[FIRING] warning: cpu on web-1</b>")


def test_telegram_not_ok_is_a_failure_without_the_token() -> None:
    with http_receiver(response_body=b'{"ok":false,"description":"chat not found"}') as rx:
        channel = TelegramChannel(
            "tg", Severity.INFO, "123:SECRET", "1", 5.0, api_url=rx.url, allow_insecure=True
        )
        with pytest.raises(ChannelError) as info:
            send(channel, notification(make_alert()))
    assert "SECRET" not in str(info.value)


def test_webhook_json_headers_and_hmac_signature() -> None:
    with http_receiver() as rx:
        channel = WebhookChannel(
            "hook",
            Severity.INFO,
            rx.url + "/sysops",
            5.0,
            True,
            headers={"Authorization": "Bearer t0ken"},
            secret="s3cret",
        )
        send(channel, notification(make_alert("cpu", Severity.CRITICAL), suppressed={"info": 2}))
        (req,) = rx.wait_for(1)
    expected = "sha256=" + hmac.new(b"s3cret", req.body, hashlib.sha256).hexdigest()
    assert req.headers["X-Sysops-Signature"] == expected
    assert req.headers["Authorization"] == "Bearer t0ken"
    assert req.headers["Content-Type"] == "application/json"
    body = req.json()
    assert body["status"] == "firing"
    assert body["severity"] == "critical"
    assert body["suppressed"] == {"info": 2}
    (alert,) = body["alerts"]
    assert alert["rule"] == "cpu"
    assert alert["state"] == "firing"
    assert alert["attributes"] == {"cpu.mode": "user"}


def test_http_error_message_is_masked() -> None:
    with http_receiver(default_status=403) as rx:
        channel = WebhookChannel("hook", Severity.INFO, rx.url + "/secret-path-123", 5.0, True)
        with pytest.raises(ChannelError) as info:
            send(channel, notification(make_alert()))
    message = str(info.value)
    assert "HTTP 403" in message
    assert "secret-path-123" not in message
    assert "/***" in message


# -- syslog ------------------------------------------------------------------------------------


def test_syslog_udp_rfc5424() -> None:
    with udp_receiver() as (sock, port):
        channel = SyslogChannel("syslog", Severity.INFO, "udp", f"127.0.0.1:{port}", 5.0, facility=3)
        send(channel, notification(make_alert("cpu", Severity.CRITICAL, message='quote " and ] bracket')))
        data, _ = sock.recvfrom(65535)
    line = data.decode()
    match = RFC5424.match(line)
    assert match, line
    assert int(match["pri"]) == 3 * 8 + 2  # daemon.crit
    assert match["host"] == "web-1"
    assert match["app"] == "otel-sysops"
    assert match["msgid"] == "firing"
    assert match["sd"].startswith("[sysops@32473 ")
    assert 'rule="cpu"' in match["sd"]
    assert "FIRING critical cpu" in match["msg"]


class _TcpCollector(socketserver.BaseRequestHandler):
    received: list[bytes]

    def handle(self) -> None:
        chunks = []
        while data := self.request.recv(65535):
            chunks.append(data)
        type(self).received.append(b"".join(chunks))


def test_syslog_tcp_octet_counting() -> None:
    _TcpCollector.received = []
    server = socketserver.TCPServer(("127.0.0.1", 0), _TcpCollector)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        channel = SyslogChannel("syslog", Severity.INFO, "tcp", f"127.0.0.1:{port}", 5.0)
        send(channel, notification(make_alert("a"), make_alert("b", state="resolved")))
        thread.join(5)
    finally:
        server.server_close()
    raw = _TcpCollector.received[0]
    frames = []
    while raw:
        length, _, rest = raw.partition(b" ")
        frames.append(rest[: int(length)])
        raw = rest[int(length) :]
    assert len(frames) == 2
    assert all(RFC5424.match(f.decode()) for f in frames)
    resolved = RFC5424.match(frames[1].decode())
    assert resolved is not None
    assert int(resolved["pri"]) == 3 * 8 + 5  # resolved: notice


def test_syslog_unix_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        channel = SyslogChannel("syslog", Severity.INFO, "unix", path, 5.0)
        send(channel, notification(make_alert()))
        assert RFC5424.match(sock.recv(65535).decode())


def test_syslog_unreachable_is_a_channel_error(tmp_path: Path) -> None:
    channel = SyslogChannel("syslog", Severity.INFO, "unix", str(tmp_path / "missing.sock"), 1.0)
    with pytest.raises(ChannelError, match="syslog unix"):
        send(channel, notification(make_alert()))


# -- email -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Return a self-signed certificate and key for 127.0.0.1, made with openssl."""
    openssl = need_binary("openssl")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    ok = isinstance(data, LoginPassword) and data.login == b"alerts" and data.password == b"pw"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_starttls(certificate: tuple[Path, Path]) -> Iterator[tuple[int, _Mailbox]]:
    from aiosmtpd.controller import Controller

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = _Mailbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=_auth,
        auth_required=True,
    )
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


def test_email_starttls_auth_text_and_html(
    smtp_starttls: tuple[int, _Mailbox], certificate: tuple[Path, Path]
) -> None:
    port, box = smtp_starttls
    channel = EmailChannel(
        "mail",
        Severity.INFO,
        "127.0.0.1",
        port,
        "agent@example.com",
        ["ops@example.com", "oncall@example.com"],
        5.0,
        "starttls",
        "alerts",
        "pw",
        str(certificate[0]),
    )
    send(channel, notification(make_alert("cpu", Severity.CRITICAL, message="<hot> & busy")))
    (msg,) = box.messages
    assert box.envelopes == [("agent@example.com", ["ops@example.com", "oncall@example.com"])]
    assert msg["Subject"] == "[FIRING] critical: cpu on web-1"
    assert msg.is_multipart()
    parts: dict[str, str] = {}
    for part in msg.walk():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            parts[part.get_content_type()] = payload.decode()
    assert "<hot> & busy" in parts["text/plain"]
    assert "&lt;hot&gt; &amp; busy" in parts["text/html"]


def test_email_bad_password_fails_without_leaking_it(
    smtp_starttls: tuple[int, _Mailbox], certificate: tuple[Path, Path]
) -> None:
    port, box = smtp_starttls
    channel = EmailChannel(
        "mail",
        Severity.INFO,
        "127.0.0.1",
        port,
        "a@example.com",
        ["b@example.com"],
        5.0,
        "starttls",
        "alerts",
        "wrong-pw-xyz",
        str(certificate[0]),
    )
    with pytest.raises(ChannelError, match="authentication failed") as info:
        send(channel, notification(make_alert()))
    assert "wrong-pw-xyz" not in str(info.value)
    assert box.messages == []


def test_email_untrusted_certificate_is_refused(smtp_starttls: tuple[int, _Mailbox]) -> None:
    port, box = smtp_starttls
    channel = EmailChannel(
        "mail",
        Severity.INFO,
        "127.0.0.1",
        port,
        "a@example.com",
        ["b@example.com"],
        5.0,
        "starttls",
        "alerts",
        "pw",
    )
    with pytest.raises(ChannelError, match="SSL"):
        send(channel, notification(make_alert()))
    assert box.messages == []


def test_email_implicit_tls(certificate: tuple[Path, Path]) -> None:
    from aiosmtpd.controller import Controller

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        channel = EmailChannel(
            "mail",
            Severity.INFO,
            "127.0.0.1",
            port,
            "a@example.com",
            ["b@example.com"],
            5.0,
            "tls",
            ca_file=str(cert),
        )
        send(channel, notification(make_alert("disk")))
    finally:
        controller.stop()
    assert [m["Subject"] for m in box.messages] == ["[FIRING] warning: disk on web-1"]
