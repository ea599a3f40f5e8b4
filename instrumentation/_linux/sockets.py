"""Count sockets by transport and state: netlink sock_diag (sock_diag(7)), /proc/net/tcp{,6}, udp{,6}."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

# include/net/tcp_states.h; request sockets (NEW_SYN_RECV) are shown as SYN_RECV, as
# /proc/net/tcp does.
TCP_STATES = {
    1: "established",
    2: "syn_sent",
    3: "syn_received",
    4: "fin_wait_1",
    5: "fin_wait_2",
    6: "time_wait",
    7: "closed",
    8: "close_wait",
    9: "last_ack",
    10: "listen",
    11: "closing",
    12: "syn_received",
}

# A key of the counts: (transport, TCP state), the state None for UDP (its sockets have no
# connection state; the kernel's "established" and "close" for UDP only mean connected or not).
SocketKey = tuple[str, str | None]


@dataclass(slots=True)
class SocketCounts:
    """Sockets counted by (transport, state)."""

    counts: Counter[SocketKey] = field(default_factory=Counter)
    malformed: int = 0


def _key(transport: str, state: int) -> SocketKey | None:
    if transport != "tcp":
        return (transport, None)
    name = TCP_STATES.get(state)
    return None if name is None else (transport, name)


def parse_proc_net_sockets(text: str, transport: str, into: SocketCounts | None = None) -> SocketCounts:
    """Count the sockets listed in /proc/net/tcp, tcp6, udp or udp6 (`st` is the 4th column, hex)."""
    out = SocketCounts() if into is None else into
    for line in text.splitlines():
        parts = line.split(None, 4)
        if not parts or parts[0] == "sl":
            continue
        if len(parts) < 4 or not parts[0].endswith(":"):
            out.malformed += 1
            continue
        try:
            state = int(parts[3], 16)
        except ValueError:
            out.malformed += 1
            continue
        key = _key(transport, state)
        if key is None:
            out.malformed += 1
            continue
        out.counts[key] += 1
    return out


# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
# The older inet_diag request (linux/inet_diag.h, still served): with no family, one dump walks
# the TCP hash once for IPv4 and IPv6 sockets alike, where SOCK_DIAG_BY_FAMILY walks it per family.
TCPDIAG_GETSOCK = 18
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes).
_REQ_V2 = struct.Struct("=BBBBI48s")
# inet_diag_req: family, src_len, dst_len, ext, inet_diag_sockid (48 bytes), states, dbs.
_REQ_COMPAT = struct.Struct("=BBBB48sII")
# inet_diag_msg: family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode.
_DIAG_MSG = struct.Struct("=BBBB48sIIIII")
_ERRNO = struct.Struct("=i")
ALL_STATES = 0xFFFFFFFF


def build_inet_diag_request(family: int, protocol: int, seq: int, states: int = ALL_STATES) -> bytes:
    """Return a netlink message asking for a dump of every `protocol` socket of `family`."""
    body = _REQ_V2.pack(family, protocol, 0, 0, states, b"\0" * 48)
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    return header + body


def build_tcp_diag_request(seq: int, states: int = ALL_STATES) -> bytes:
    """Return a netlink message asking for one dump of every TCP socket, IPv4 and IPv6."""
    body = _REQ_COMPAT.pack(0, 0, 0, 0, b"\0" * 48, states, 0)
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), TCPDIAG_GETSOCK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    return header + body


@dataclass(slots=True)
class DiagBatch:
    """What one datagram of a sock_diag dump held."""

    states: list[int] = field(default_factory=list)
    done: bool = False
    # A negative errno from an NLMSG_ERROR message, 0 when none.
    error: int = 0
    malformed: int = 0


def parse_inet_diag(data: bytes, seq: int | None = None) -> DiagBatch:
    """Return the socket states in a datagram of a dump; stop at the first truncated message.

    Messages of another sequence number (a late reply to an earlier request) are ignored.
    """
    out = DiagBatch()
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            out.malformed += 1
            return out
        payload = offset + _NLMSGHDR.size
        if seq is None or msg_seq == seq:
            if kind == NLMSG_DONE:
                out.done = True
                return out
            if kind == NLMSG_ERROR:
                if length - _NLMSGHDR.size >= _ERRNO.size:
                    out.error = _ERRNO.unpack_from(data, payload)[0] or 0
                else:
                    out.malformed += 1
                out.done = True
                return out
            if kind in (SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK):
                if length - _NLMSGHDR.size >= _DIAG_MSG.size:
                    out.states.append(data[payload + 1])
                else:
                    out.malformed += 1
        # NLMSG_ALIGN: messages start on 4-byte boundaries.
        offset += (length + 3) & ~3
    if offset != len(data):
        out.malformed += 1
    return out


TCP_TIME_WAIT = 6
# include/net/tcp_states.h: a pseudo-state asking inet_diag (Linux >= 6.5) to walk the bind
# hash too and report sockets that are bound but neither listening nor connected (as CLOSE).
# /proc/net/tcp and sockstat's `inuse` do not see those, and the walk costs about as much as
# the whole rest of a dump: never asked for.
TCP_BOUND_INACTIVE = 13
TCP_HASHED = ALL_STATES & ~(1 << TCP_BOUND_INACTIVE)
WITHOUT_TIME_WAIT = TCP_HASHED & ~(1 << TCP_TIME_WAIT)


@dataclass(slots=True)
class SockStat:
    """/proc/net/sockstat: (protocol, field) -> value, e.g. ("TCP", "tw")."""

    values: dict[tuple[str, str], int] = field(default_factory=dict)
    malformed: int = 0


def parse_sockstat(text: str) -> SockStat:
    """Parse `TCP: inuse 6 orphan 0 tw 2336 alloc 7 mem 273` lines (name/value pairs)."""
    out = SockStat()
    for line in text.splitlines():
        proto, sep, rest = line.partition(":")
        words = rest.split()
        if not line.strip():
            continue
        if not sep or not proto or len(words) % 2:
            out.malformed += 1
            continue
        try:
            pairs = {(proto, words[i]): int(words[i + 1]) for i in range(0, len(words), 2)}
        except ValueError:
            out.malformed += 1
            continue
        out.values.update(pairs)
    return out
