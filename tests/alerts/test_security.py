"""SSRF refusal, https only, and secrets kept out of messages."""

from __future__ import annotations

import ipaddress
import logging

import anyio
import pytest

from otel_sysops.alerts import (
    DEFAULT_DEDUP,
    AlertManager,
    ChannelError,
    DeliveryPolicy,
    Finding,
    ManagerPolicy,
    Severity,
)
from otel_sysops.alerts._http import TelegramChannel, WebhookChannel
from otel_sysops.alerts._security import check_destination, is_public, mask_url
from tests.alerts._servers import http_receiver, make_alert, notification


def test_mask_url_keeps_only_scheme_and_host() -> None:
    assert mask_url("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/***"
    assert mask_url("http://127.0.0.1:8080/bot123:ABC/sendMessage?x=1") == "http://127.0.0.1:8080/***"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # AWS, GCP, Azure metadata
        "100.100.100.200",  # Alibaba metadata (shared address space)
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00:ec2::254",  # AWS IPv6 metadata
        "::ffff:127.0.0.1",
        "224.0.0.1",
        # IPv6 forms that carry 169.254.169.254 (or another non-public IPv4) to a translator or relay.
        "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
        "64:ff9b::7f00:1",  # NAT64 -> 127.0.0.1
        "64:ff9b::10.0.0.1",
        "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix
        "2002:a9fe:a9fe::1",  # 6to4
        "2002:c0a8:101::1",  # 6to4 -> 192.168.1.1
        "::169.254.169.254",  # IPv4-compatible
        "::a9fe:a9fe",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "2001:0:a9fe:a9fe::1",  # Teredo, server 169.254.169.254
        "2606:4700::5efe:a9fe:a9fe",  # ISATAP interface id around 169.254.169.254
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize(
    ("address", "carried"),
    [
        ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),
        ("2002:a9fe:a9fe::1", ["169.254.169.254"]),
        ("::a9fe:a9fe", ["169.254.169.254"]),
        ("::ffff:a9fe:a9fe", ["169.254.169.254"]),
        ("2001:0:a9fe:a9fe::ffff:ffff", ["169.254.169.254", "0.0.0.0"]),
        ("fe80::200:5efe:a9fe:a9fe", ["169.254.169.254"]),
        ("2606:4700:4700::1111", []),
    ],
)
def test_embedded_ipv4_forms_are_decoded(address: str, carried: list[str]) -> None:
    # Imported here: the refusals above and below go through is_public and check_destination.
    from otel_sysops.alerts._security import embedded_ipv4

    assert [str(v4) for v4 in embedded_ipv4(ipaddress.IPv6Address(address))] == carried


@pytest.mark.parametrize("address", ["64:ff9b::808:808", "2002:808:808::1"])
def test_translated_forms_of_a_public_ipv4_stay_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/hook", "non-public address 127.0.0.1"),
        ("https://localhost:8443/hook", "non-public address"),
        ("https://169.254.169.254/latest/meta-data", "non-public address 169.254.169.254"),
        ("https://[::1]/hook", "non-public address ::1"),
        ("https://[64:ff9b::a9fe:a9fe]/hook", "non-public address 64:ff9b::a9fe:a9fe"),
        ("https://[2002:a9fe:a9fe::1]/hook", "non-public address 2002:a9fe:a9fe::1"),
        ("http://hooks.example.com/hook", "only https destinations"),
    ],
)
def test_check_destination_refuses(url: str, reason: str) -> None:
    with pytest.raises(ChannelError, match=reason) as info:
        anyio.run(check_destination, url, False)
    assert url not in str(info.value)
    assert "/***" in str(info.value)


def test_allow_insecure_lifts_the_check() -> None:
    anyio.run(check_destination, "http://127.0.0.1/hook", True)


@pytest.mark.slow
def test_channel_to_a_local_address_is_refused_before_any_request() -> None:
    with http_receiver() as rx:
        https_url = rx.url.replace("http://", "https://") + "/secret-path"
        channel = WebhookChannel("hook", Severity.INFO, https_url, 5.0, allow_insecure=False)
        with pytest.raises(ChannelError, match="non-public") as info:
            anyio.run(channel.send, notification(make_alert()))
        anyio.run(channel.aclose)
        assert rx.attempts == 0
    assert "secret-path" not in str(info.value)


@pytest.mark.slow
def test_connection_errors_never_show_the_token() -> None:
    # Nothing listens on port 9 of 127.0.0.1: a connection error whose text must not carry the token.
    channel = TelegramChannel(
        "tg", Severity.INFO, "42:TOPSECRET", "1", 2.0, api_url="http://127.0.0.1:9", allow_insecure=True
    )
    with pytest.raises(ChannelError) as info:
        anyio.run(channel.send, notification(make_alert()))
    anyio.run(channel.aclose)
    assert "TOPSECRET" not in str(info.value)
    assert "127.0.0.1:9/***" in str(info.value)


@pytest.mark.slow
def test_no_secret_in_any_log_record(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with http_receiver(statuses=[500]) as rx:
        manager = AlertManager(
            "web-1", ManagerPolicy(DEFAULT_DEDUP, delivery=DeliveryPolicy(group_window=0, backoff=0.01))
        )
        manager.add_channel(WebhookChannel("hook", Severity.INFO, rx.url + "/SECRET-PATH", 5.0, True))
        manager.submit(Finding("cpu", "system.cpu.utilization", {}, Severity.CRITICAL, "busy"))
        anyio.run(manager.aclose, 5.0)
        assert len(rx.requests) == 1  # delivered on the second attempt
    assert caplog.records
    assert not [r for r in caplog.records if "SECRET" in r.getMessage()]
