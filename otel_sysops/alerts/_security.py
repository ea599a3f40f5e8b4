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


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use: never a public peer
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated)
_ISATAP_IIDS = (0x00005EFE, 0x02005EFE)  # RFC 5214: interface id ::0:5efe:a.b.c.d / ::200:5efe:...


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Return the IPv4 addresses an IPv6 address carries (the ones a relay or translator reaches):
    IPv4-mapped, IPv4-compatible, NAT64 (64:ff9b::/96), 6to4 (2002::/16), Teredo (2001::/32: server
    and client), ISATAP (interface id 0:5efe)."""
    out: list[ipaddress.IPv4Address] = []
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):
        out.append(low)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if (int(ip) >> 32) & 0xFFFFFFFF in _ISATAP_IIDS:
        out.append(low)
    return out


def is_public(address: str) -> bool:
    """Return whether an IP address is globally routable (not loopback, private, link-local, metadata),
    and so is every IPv4 address it embeds (NAT64 64:ff9b::a9fe:a9fe is 169.254.169.254)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        embedded = embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            return _public(ip.ipv4_mapped)
        if embedded and not all(_public(v4) for v4 in embedded):
            return False
        if ip in _NAT64 or ip.sixtofour is not None:
            # Python counts these prefixes as global: what decides is the IPv4 they carry.
            return True
    return _public(ip)


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
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
