"""Destination checks (https only, no private addresses: SSRF) and masking of secrets in messages."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import anyio

from ._errors import ChannelError


def mask_url(url: str) -> str:
    """Return the scheme and host of a URL with the rest hidden: `https://hooks.slack.com/***`."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'https'}://{host}{port}/***"


def is_public(address: str) -> bool:
    """Return whether an IP address is globally routable (not loopback, private, link-local, metadata)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global is False for loopback, RFC 1918, link-local (169.254.169.254, the cloud metadata
    # address), CGNAT (100.100.100.200, Alibaba's metadata), ULA (fd00:ec2::254, AWS's) and reserved.
    return ip.is_global and not ip.is_multicast


async def check_destination(url: str, allow_insecure: bool) -> None:
    """Refuse a URL that is not https or whose host resolves to a non-public address."""
    if allow_insecure:
        return
    parts = urlsplit(url)
    masked = mask_url(url)
    if parts.scheme != "https":
        raise ChannelError(f"{masked}: only https destinations are allowed (allow_insecure is off)")
    host = parts.hostname or ""
    try:
        infos = await anyio.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ChannelError(f"{masked}: cannot resolve {host} ({exc.strerror or exc})") from None
    for info in infos:
        address = str(info[4][0])
        if not is_public(address):
            raise ChannelError(
                f"{masked}: {host} resolves to non-public address {address}; refused "
                "(set allow_insecure = true for a local receiver)"
            )
