"""Network collector: frozen /proc trees through the real pipeline, live agreement with psutil,
netlink against /proc/net, and the parsers under random input."""

from __future__ import annotations

import logging
import shutil
import socket
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrumentation._linux.netdev import parse_net_dev, parse_snmp
from instrumentation._linux.sockets import (
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    TCPDIAG_GETSOCK,
    SocketCounts,
    build_inet_diag_request,
    build_tcp_diag_request,
    parse_inet_diag,
    parse_proc_net_sockets,
    parse_sockstat,
)
from instrumentation._sockets import ConnectionSource, NetlinkSource, ProcNetSource
from instrumentation.network import NetworkCollector
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from tests.conftest import FIXTURES

from ._collect import a, names, pipeline_with, points

PROC = FIXTURES / "host-net" / "proc"
NET = PROC / "1" / "net"


def _network(
    settings: Settings, connection_sources: Sequence[ConnectionSource] | None = None
) -> tuple[Pipeline, NetworkCollector]:
    pipe, collector = pipeline_with(
        settings, "network", lambda ctx: NetworkCollector(ctx, connection_sources=connection_sources)
    )
    assert isinstance(collector, NetworkCollector)
    return pipe, collector


def test_fixture_interfaces_connections_protocols_conntrack(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(procfs=str(PROC), sysfs=str(PROC.parent / "nosys"))
    pipe, collector = _network(settings)
    # procfs is not /proc: PID 1's namespace is read, and counted from its /proc tables.
    assert collector.net_dir == PROC / "1" / "net"
    assert collector.connection_source == "procfs"
    data = pipe.tick().data
    io = points(data, "system.network.io")
    assert io == {
        a(network__interface__name="lo", network__io__direction="receive"): 123456,
        a(network__interface__name="lo", network__io__direction="transmit"): 123456,
        a(network__interface__name="eth0", network__io__direction="receive"): 9876543210,
        a(network__interface__name="eth0", network__io__direction="transmit"): 1234567890,
        a(network__interface__name="veth1a2b", network__io__direction="receive"): 1000,
        a(network__interface__name="veth1a2b", network__io__direction="transmit"): 2000,
    }
    packets = points(data, "system.network.packet.count")
    assert packets[a(network__interface__name="eth0", network__io__direction="receive")] == 1234567
    errors = points(data, "system.network.errors")
    assert errors[a(network__interface__name="eth0", network__io__direction="receive")] == 3
    assert errors[a(network__interface__name="eth0", network__io__direction="transmit")] == 1
    dropped = points(data, "system.network.packet.dropped")
    assert dropped[a(network__interface__name="eth0", network__io__direction="receive")] == 17
    assert dropped[a(network__interface__name="veth1a2b", network__io__direction="transmit")] == 5

    assert points(data, "system.network.connection.count") == {
        a(network__transport="tcp", network__connection__state="listen"): 3,
        a(network__transport="tcp", network__connection__state="established"): 4,
        a(network__transport="tcp", network__connection__state="time_wait"): 1,
        a(network__transport="udp"): 4,
    }
    assert points(data, "sysops.tcp.retransmits") == {a(): 77}
    assert points(data, "sysops.tcp.segments") == {
        a(network__io__direction="receive"): 32329,
        a(network__io__direction="transmit"): 21752,
    }
    assert points(data, "sysops.tcp.opens") == {
        a(sysops__tcp__open__type="active"): 681,
        a(sysops__tcp__open__type="passive"): 293,
    }
    assert points(data, "sysops.tcp.listen.overflows") == {a(): 5}
    assert points(data, "sysops.tcp.listen.drops") == {a(): 6}
    assert points(data, "sysops.tcp.syncookies")[a(sysops__tcp__syncookie__outcome="sent")] == 7
    assert points(data, "sysops.tcp.timeouts") == {a(): 8}
    assert points(data, "sysops.tcp.aborts")[a(sysops__tcp__abort__reason="data")] == 9
    assert points(data, "sysops.tcp.backlog.drops") == {a(): 10}
    assert points(data, "sysops.tcp.errors") == {a(): 2}
    assert points(data, "sysops.tcp.resets.sent") == {a(): 449}
    assert points(data, "sysops.udp.datagrams") == {
        a(network__io__direction="receive"): 133,
        a(network__io__direction="transmit"): 134,
    }
    udp_errors = points(data, "sysops.udp.errors")
    assert udp_errors[a(sysops__udp__error__type="no_port")] == 4
    assert udp_errors[a(sysops__udp__error__type="receive_buffer")] == 3
    assert points(data, "sysops.network.conntrack.count") == {a(): 42}
    assert points(data, "sysops.network.conntrack.limit") == {a(): 65536}
    # One broken line in net/dev, one in net/tcp.
    assert pipe.errors.snapshot() == {("network", "malformed_line"): 2}
    pipe.close(1.0)


def test_interface_patterns_and_own_namespace(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        procfs=str(PROC),
        instrumentation={
            "network": {
                "host_netns": False,
                "include_interfaces": ["eth*", "veth*", "lo"],
                "exclude_interfaces": ["veth*"],
                "connection_source": "procfs",
            }
        },
    )
    pipe, collector = _network(settings)
    assert collector.net_dir == PROC / "net"
    data = pipe.tick().data
    ifaces = {dict(k)["network.interface.name"] for k in points(data, "system.network.io")}
    assert ifaces == {"lo", "eth0"}
    pipe.close(1.0)


def test_missing_parts_are_skipped_and_the_rest_reported(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(PROC, proc, symlinks=True)
    shutil.rmtree(proc / "sys")
    (proc / "1" / "net" / "netstat").unlink()
    for name in ("tcp6", "udp6"):  # a host without IPv6
        (proc / "1" / "net" / name).unlink()
    pipe, _ = _network(make_settings(procfs=str(proc)))
    for tick in (1, 2):
        data = pipe.tick().data
        assert "sysops.network.conntrack.count" not in names(data)
        assert "sysops.tcp.listen.overflows" not in names(data)
        assert points(data, "sysops.tcp.retransmits") == {a(): 77}
        # netstat is gone: counted each tick; conntrack without the module loaded is normal.
        counted = {k: n for (plugin, k), n in pipe.errors.snapshot().items() if plugin == "network"}
        assert counted["missing_file"] == tick
        assert (
            points(data, "system.network.connection.count")[
                a(network__transport="tcp", network__connection__state="listen")
            ]
            == 2
        )
    pipe.close(1.0)


def test_no_source_at_all_means_unavailable(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    with pytest.raises(CollectorUnavailableError, match=r"none of .*net/dev"):
        _network(make_settings(procfs=str(tmp_path)))


def test_missing_net_dev_disables_only_the_interface_counters(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(PROC, proc, symlinks=True)
    (proc / "1" / "net" / "dev").unlink()
    pipe, _ = _network(make_settings(procfs=str(proc), sysfs=str(tmp_path / "nosys")))
    for tick in (1, 2):
        data = pipe.tick().data
        assert "system.network.io" not in names(data)
        # snmp, netstat, conntrack and the socket tables are other files: still reported.
        assert points(data, "sysops.tcp.retransmits") == {a(): 77}
        assert "sysops.tcp.listen.overflows" in names(data)
        assert "sysops.network.conntrack.count" in names(data)
        assert "system.network.connection.count" in names(data)
        counted = {k: n for (plugin, k), n in pipe.errors.snapshot().items() if plugin == "network"}
        assert counted["missing_file"] == tick  # net/tcp also holds one broken line (counted apart)
    pipe.close(1.0)


class _BrokenNetlink:
    """A connection source whose netlink socket is refused (e.g. a seccomp profile)."""

    name = "netlink"

    def __init__(self) -> None:
        self.calls = 0

    def count(self) -> SocketCounts:
        self.calls += 1
        raise PermissionError(1, "Operation not permitted")

    def close(self) -> None:
        pass


def test_netlink_failure_falls_back_to_proc_tables_once(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    broken = _BrokenNetlink()
    settings = make_settings(procfs=str(PROC))
    pipe, collector = _network(settings, connection_sources=[broken, ProcNetSource(NET)])
    with caplog.at_level(logging.WARNING, logger="instrumentation.network"):
        for _ in range(3):
            data = pipe.tick().data
            assert sum(points(data, "system.network.connection.count").values()) == 12
    assert broken.calls == 1
    assert collector.connection_source == "procfs"
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1
    pipe.close(1.0)


# -- the live machine ------------------------------------------------------------------------


def test_live_interface_counters_agree_with_psutil(make_settings: Callable[..., Settings]) -> None:
    pipe, _ = _network(make_settings())
    before = psutil.net_io_counters(pernic=True)
    data = pipe.tick().data
    after = psutil.net_io_counters(pernic=True)
    io = points(data, "system.network.io")
    assert {dict(k)["network.interface.name"] for k in io} == set(before)
    for nic, counters in before.items():
        received = io[a(network__interface__name=nic, network__io__direction="receive")]
        sent = io[a(network__interface__name=nic, network__io__direction="transmit")]
        assert counters.bytes_recv <= received <= after[nic].bytes_recv
        assert counters.bytes_sent <= sent <= after[nic].bytes_sent
    pipe.close(1.0)


def _open_some_sockets() -> list[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.bind(("::1", 0))
    return [server, client, accepted, udp]


def _agree(x: SocketCounts, y: SocketCounts) -> None:
    for key in set(x.counts) | set(y.counts):
        # TIME_WAIT sockets expire and others open between the two reads: allow a little drift.
        assert abs(x.counts[key] - y.counts[key]) <= max(3, 0.1 * x.counts[key]), (key, x, y)


def test_live_netlink_and_proc_tables_agree() -> None:
    socks = _open_some_sockets()
    netlink = NetlinkSource()
    # TIME_WAIT from /proc/net/sockstat's count, and empty tables (here UDP) not dumped at all.
    own = Path("/proc/self/net")
    with_sockstat = NetlinkSource(
        sockstat=lambda: (own / "sockstat").read_text() + (own / "sockstat6").read_text()
    )
    try:
        by_netlink = netlink.count()
        by_proc = ProcNetSource(Path("/proc/net")).count()
        by_sockstat = with_sockstat.count()
    finally:
        netlink.close()
        with_sockstat.close()
        for s in socks:
            s.close()
    assert by_netlink.malformed == by_proc.malformed == 0
    assert by_netlink.counts[("tcp", "listen")] >= 1
    assert by_netlink.counts[("tcp", "established")] >= 2
    assert by_netlink.counts[("udp", None)] >= 1
    _agree(by_netlink, by_proc)
    _agree(by_netlink, by_sockstat)


def test_bound_only_sockets_are_counted_by_neither_source() -> None:
    """A socket bound but neither listening nor connected is in no table /proc/net/tcp shows; a
    netlink dump asking for every state (Linux >= 6.5) would report it as closed."""
    bound = []
    for _ in range(10):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        bound.append(s)
    netlink = NetlinkSource()
    try:
        by_netlink = netlink.count()
        by_proc = ProcNetSource(Path("/proc/net")).count()
    finally:
        netlink.close()
        for s in bound:
            s.close()
    _agree(by_netlink, by_proc)
    assert by_netlink.counts[("tcp", "closed")] < 10


def test_live_collector_uses_netlink_and_matches_the_fallback(make_settings: Callable[..., Settings]) -> None:
    """Both sources count the live host's sockets, which other processes open and close meanwhile:
    the /proc reading is taken between two netlink readings and must lie within them (give or take
    a few); a host that churns so fast that no round brackets it is retried until a deadline."""
    socks = _open_some_sockets()
    pipe, collector = _network(make_settings())
    fallback, forced = _network(make_settings(instrumentation={"network": {"connection_source": "procfs"}}))
    try:
        assert collector.connection_source == "netlink"
        assert forced.connection_source == "procfs"
        deadline = time.monotonic() + 60.0
        while True:
            before = points(pipe.tick().data, "system.network.connection.count")
            theirs = points(fallback.tick().data, "system.network.connection.count")
            after = points(pipe.tick().data, "system.network.connection.count")
            outside = []
            for key in set(before) | set(theirs) | set(after):
                low, high = sorted((before.get(key, 0), after.get(key, 0)))
                slack = max(3, 0.1 * high)
                if not low - slack <= theirs.get(key, 0) <= high + slack:
                    outside.append((key, before.get(key, 0), theirs.get(key, 0), after.get(key, 0)))
            if not outside or time.monotonic() > deadline:
                break
        assert not outside, outside
        assert before  # our own sockets at least
    finally:
        for s in socks:
            s.close()
        pipe.close(1.0)
        fallback.close(1.0)


# -- the parsers -----------------------------------------------------------------------------


def test_netlink_request_layout() -> None:
    req = build_inet_diag_request(socket.AF_INET6, socket.IPPROTO_TCP, seq=7)
    # nlmsghdr (16) + inet_diag_req_v2 (56)
    assert len(req) == 72
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq) == (72, SOCK_DIAG_BY_FAMILY, 0x301, 7)
    family, proto, _ext, _pad, states = struct.unpack_from("=BBBBI", req, 16)
    assert (family, proto, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0xFFFFFFFF)


def _diag_msg(state: int, seq: int) -> bytes:
    body = struct.pack("=BBBB48sIIIII", socket.AF_INET, state, 0, 0, b"\0" * 48, 0, 0, 0, 0, 0)
    return struct.pack("=IHHII", 16 + len(body), SOCK_DIAG_BY_FAMILY, 2, seq, 0) + body


def test_netlink_reply_parsing() -> None:
    done = struct.pack("=IHHII", 20, NLMSG_DONE, 2, 5, 0) + b"\0\0\0\0"
    batch = parse_inet_diag(_diag_msg(10, 5) + _diag_msg(1, 5) + _diag_msg(1, 4) + done, seq=5)
    assert batch.states == [10, 1]
    assert batch.done
    assert batch.malformed == 0
    assert batch.error == 0
    error = struct.pack("=IHHII", 36, 2, 0, 5, 0) + struct.pack("=i", -97) + b"\0" * 16
    assert parse_inet_diag(error, seq=5).error == -97
    truncated = parse_inet_diag(_diag_msg(1, 5)[:50], seq=5)
    assert truncated.states == []
    assert truncated.malformed == 1


def test_proc_net_dev_and_snmp_literals() -> None:
    dev = parse_net_dev((NET / "dev").read_text())
    assert dev.interfaces["eth0"]["tx_bytes"] == 1234567890
    assert dev.malformed == 1
    snmp = parse_snmp("Tcp: A B\nTcp: 1 -1\nUdp: X\nUdp: 1 2\nIp: Y\n")
    assert snmp.values == {("Tcp", "A"): 1, ("Tcp", "B"): -1}
    assert snmp.malformed == 2  # Udp's counts differ; Ip has no values line
    sockstat = parse_sockstat("sockets: used 29\nTCP: inuse 6 orphan 0 tw 2336\nUDP: inuse\nRAW: inuse x\n")
    assert sockstat.values[("TCP", "tw")] == 2336
    assert sockstat.values[("sockets", "used")] == 29
    assert sockstat.malformed == 2


_TEXTS = [(NET / name).read_text() for name in ("dev", "snmp", "netstat", "tcp", "udp")]


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(0, 4), st.integers(0, 20_000))
def test_text_parsers_never_raise(text: str, which: int, cut: int) -> None:
    for sample in (text, _TEXTS[which][:cut], _TEXTS[which][:cut] + text):
        parse_net_dev(sample)
        parse_snmp(sample)
        parse_sockstat(sample)
        for transport in ("tcp", "udp"):
            counts = parse_proc_net_sockets(sample, transport)
            assert counts.malformed >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 300), st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_netlink_parser_never_raises(data: bytes, cut: int, seq: int | None) -> None:
    valid = _diag_msg(1, 3) + _diag_msg(10, 3)
    for sample in (data, valid[:cut], valid[:cut] + data, valid + data):
        batch = parse_inet_diag(sample, seq)
        assert batch.malformed >= 0
        assert all(0 <= s <= 255 for s in batch.states)


def test_settings_are_validated_and_named(make_settings: Callable[..., Settings]) -> None:
    from otel_sysops.errors import ConfigError
    from otel_sysops.settings import load_settings

    with pytest.raises(ConfigError, match="connection_source"):
        make_settings(instrumentation={"network": {"connection_source": "bogus"}})
    with pytest.raises(ConfigError, match="SYSOPS_INSTRUMENTATION__CGROUP__MAX_GROUPS"):
        load_settings(None, {}, environ={"SYSOPS_INSTRUMENTATION__CGROUP__MAX_GROUPS": "0"})
    env = {
        "SYSOPS_INSTRUMENTATION__PROCESS__TOP_N": "3",
        "SYSOPS_INSTRUMENTATION__NETWORK__HOST_NETNS": "true",
    }
    loaded = load_settings(None, {}, environ=env)
    assert loaded.instrumentation.process.top_n == 3
    assert loaded.instrumentation.network.host_netns is True


def test_one_tcp_dump_counts_both_families_as_the_per_family_dumps_do() -> None:
    socks = _open_some_sockets()
    server6 = socket.socket(socket.AF_INET6)
    server6.bind(("::1", 0))
    server6.listen()
    client6 = socket.create_connection(server6.getsockname()[:2])
    accepted6, _ = server6.accept()
    socks += [server6, client6, accepted6]
    one, per_family = NetlinkSource(), NetlinkSource(one_tcp_dump=False)
    try:
        by_one = one.count()
        by_family = per_family.count()
        by_proc = ProcNetSource(Path("/proc/net")).count()
    finally:
        one.close()
        per_family.close()
        for s in socks:
            s.close()
    assert one.one_tcp_dump  # the kernel served it
    assert by_one.malformed == 0
    assert by_one.counts[("tcp", "listen")] >= 2
    assert by_one.counts[("tcp", "established")] >= 4
    _agree(by_one, by_family)
    _agree(by_one, by_proc)


def test_tcp_diag_request_layout() -> None:
    req = build_tcp_diag_request(seq=9, states=0x7FF)
    # nlmsghdr (16) + inet_diag_req (60)
    assert len(req) == 76
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert (length, kind, flags, seq) == (76, TCPDIAG_GETSOCK, 0x301, 9)
    assert req[16] == 0  # no family: IPv4 and IPv6
    assert struct.unpack_from("=II", req, 16 + 4 + 48) == (0x7FF, 0)


class _RefusingKernel:
    """A sock_diag socket whose kernel refuses the one-dump TCP request (EINVAL)."""

    def __init__(self) -> None:
        self.kinds: list[int] = []
        self._reply = b""

    def send(self, data: bytes) -> int:
        _, kind, _, seq, _ = struct.unpack_from("=IHHII", data)
        self.kinds.append(kind)
        if kind == TCPDIAG_GETSOCK:
            self._reply = struct.pack("=IHHIIi", 20, NLMSG_ERROR, 0, seq, 0, -22)
        else:
            done = struct.pack("=IHHII", 20, NLMSG_DONE, 2, seq, 0) + b"\0\0\0\0"
            self._reply = _diag_msg(10, seq) + done
        return len(data)

    def recv(self, _: int) -> bytes:
        return self._reply

    def close(self) -> None:
        return None


def test_a_refused_one_dump_request_falls_back_to_per_family_dumps() -> None:
    kernel = _RefusingKernel()
    source = NetlinkSource()
    source._sock = kernel  # type: ignore[assignment]
    first = source.count()
    second = source.count()
    tcp, tcp6, udp, udp6 = [SOCK_DIAG_BY_FAMILY] * 4
    assert kernel.kinds == [TCPDIAG_GETSOCK, tcp, tcp6, udp, udp6, tcp, tcp6, udp, udp6]
    assert first.counts == second.counts == {("tcp", "listen"): 2, ("udp", None): 2}
    assert not source.one_tcp_dump
