"""Where socket counts come from: a netlink sock_diag dump, or /proc/net/tcp{,6} and udp{,6}."""

from __future__ import annotations

import itertools
import logging
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._linux.sockets import (
    ALL_STATES,
    NETLINK_SOCK_DIAG,
    TCP_HASHED,
    TCP_STATES,
    WITHOUT_TIME_WAIT,
    SocketCounts,
    build_inet_diag_request,
    build_tcp_diag_request,
    parse_inet_diag,
    parse_proc_net_sockets,
    parse_sockstat,
)

# (transport, IP protocol number, address family, /proc/net file, its line in sockstat{,6})
_log = logging.getLogger(__name__)

TABLES = (
    ("tcp", socket.IPPROTO_TCP, socket.AF_INET, "tcp", "TCP"),
    ("tcp", socket.IPPROTO_TCP, socket.AF_INET6, "tcp6", "TCP6"),
    ("udp", socket.IPPROTO_UDP, socket.AF_INET, "udp", "UDP"),
    ("udp", socket.IPPROTO_UDP, socket.AF_INET6, "udp6", "UDP6"),
)


class SocketSourceError(OSError):
    """The source cannot count sockets (netlink refused, a table unreadable)."""


class ConnectionSource(Protocol):
    """Count the IPv4 and IPv6 TCP and UDP sockets of one network namespace."""

    name: str

    def count(self) -> SocketCounts:
        """Return this moment's counts; raise OSError when the source cannot be read."""
        ...

    def close(self) -> None:
        """Release the source's handles."""
        ...


class ProcNetSource:
    """Parse /proc/net/tcp, tcp6, udp, udp6 under `net_dir` (absent tables, e.g. no IPv6, are skipped)."""

    name = "procfs"

    def __init__(self, net_dir: Path, read_text: Callable[[Path], str] | None = None) -> None:
        self._dir = net_dir
        self._read = read_text or (lambda p: p.read_text(encoding="utf-8", errors="replace"))

    def count(self) -> SocketCounts:
        out = SocketCounts()
        found = False
        for transport, _proto, _family, fname, _line in TABLES:
            try:
                text = self._read(self._dir / fname)
            except FileNotFoundError:
                continue
            found = True
            parse_proc_net_sockets(text, transport, out)
        if not found:
            raise SocketSourceError(f"none of {self._dir}/tcp, tcp6, udp, udp6 exists")
        return out

    def close(self) -> None:
        """Nothing to release."""


class NetlinkSource:
    """Dump sockets through NETLINK_SOCK_DIAG (one request per family and protocol).

    The dump sees the agent's own network namespace. A reply that does not complete within
    `timeout` seconds raises, so a tick is never held up.

    With `sockstat` (returning the text of /proc/net/sockstat and sockstat6), less is dumped:
    TIME_WAIT sockets are taken from its `tw` count instead of one message each (on a busy host
    they are most of the sockets), and a table whose `inuse` is 0 is not dumped at all (the
    kernel walks every hash bucket for a dump, which is most of its cost). TCP dumps never ask
    for bound-only sockets (`TCP_BOUND_INACTIVE`): like /proc/net/tcp, the counts are of sockets
    that listen or have a connection state, and the kernel is spared a walk of its bind table.
    IPv4 and IPv6 TCP come from one dump when both have sockets (`one_tcp_dump`).
    """

    name = "netlink"

    def __init__(
        self,
        timeout: float = 1.0,
        bufsize: int = 65536,
        sockstat: Callable[[], str] | None = None,
        *,
        one_tcp_dump: bool = True,
    ) -> None:
        self._timeout = timeout
        self._bufsize = bufsize
        self._sockstat = sockstat
        self._seq = itertools.count(1)
        self._sock: socket.socket | None = None
        # Whether IPv4 and IPv6 TCP come from one dump (TCPDIAG_GETSOCK): off for good once the
        # kernel refuses it.
        self.one_tcp_dump = one_tcp_dump

    def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
            sock.settimeout(self._timeout)
            sock.bind((0, 0))
            self._sock = sock
        return self._sock

    def _read_sockstat(self, out: SocketCounts) -> dict[tuple[str, str], int]:
        """Return sockstat's counters, empty when there is no reader or it fails."""
        if self._sockstat is None:
            return {}
        try:
            stat = parse_sockstat(self._sockstat())
        except OSError:
            return {}
        out.malformed += stat.malformed
        return stat.values

    def count(self) -> SocketCounts:
        out = SocketCounts()
        stat = self._read_sockstat(out)
        time_wait = stat.get(("TCP", "tw"))
        tcp_states = TCP_HASHED if time_wait is None else WITHOUT_TIME_WAIT
        try:
            sock = self._socket()
            both = stat.get(("TCP", "inuse")) != 0 and stat.get(("TCP6", "inuse")) != 0
            # One walk of the TCP hash for both families; per family if the kernel refuses.
            tcp_done = both and self.one_tcp_dump and self._dump_tcp_once(sock, tcp_states, out)
            for transport, proto, family, _fname, line in TABLES:
                if stat.get((line, "inuse")) == 0 or (transport == "tcp" and tcp_done):
                    continue
                states = ALL_STATES if transport != "tcp" else tcp_states
                self._dump(sock, family, proto, transport, states, out)
        except OSError:
            self.close()
            raise
        if time_wait:
            out.counts[("tcp", "time_wait")] += time_wait
        return out

    def _dump_tcp_once(self, sock: socket.socket, states: int, out: SocketCounts) -> bool:
        """Count IPv4 and IPv6 TCP sockets in one dump; False (counting nothing) if refused."""
        part = SocketCounts()
        try:
            self._dump(sock, 0, socket.IPPROTO_TCP, "tcp", states, part, build_tcp_diag_request)
        except SocketSourceError as exc:
            _log.info("netlink: the one-dump TCP request was refused (%s); dumping per family", exc)
            self.one_tcp_dump = False
            return False
        out.counts.update(part.counts)
        out.malformed += part.malformed
        return True

    def _dump(
        self,
        sock: socket.socket,
        family: int,
        proto: int,
        transport: str,
        states: int,
        out: SocketCounts,
        compat: Callable[[int, int], bytes] | None = None,
    ) -> None:
        seq = next(self._seq)
        request = (
            build_inet_diag_request(family, proto, seq, states) if compat is None else compat(seq, states)
        )
        sock.send(request)
        while True:
            batch = parse_inet_diag(sock.recv(self._bufsize), seq)
            out.malformed += batch.malformed
            if batch.error:
                # EAFNOSUPPORT/ENOENT: this family or protocol is not in the kernel (no IPv6).
                if -batch.error in (97, 2) and compat is None:
                    return
                raise SocketSourceError(-batch.error, f"sock_diag dump failed: errno {-batch.error}")
            for state, n in Counter(batch.states).items():
                key = ("udp", None) if transport == "udp" else _tcp_key(state)
                if key is None:
                    out.malformed += n
                else:
                    out.counts[key] += n
            if batch.done or batch.malformed:
                return

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _tcp_key(state: int) -> tuple[str, str | None] | None:
    name = TCP_STATES.get(state)
    return None if name is None else ("tcp", name)
