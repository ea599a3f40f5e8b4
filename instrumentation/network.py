"""Network: per-interface counters (/proc/net/dev), socket counts (netlink sock_diag, /proc/net/tcp*
as the fallback), TCP/UDP protocol counters (/proc/net/snmp, /proc/net/netstat), conntrack.

Which network namespace: with the default `procfs` the agent reports its own namespace
(`{procfs}/net` is `/proc/self/net`). With the host's /proc mounted elsewhere it reports PID 1's
(`{procfs}/1/net/...`), the host's when the agent runs with hostPID; netlink sees only the
agent's own namespace, so there the /proc tables are parsed instead unless both namespaces are the
same. The conntrack files under `{procfs}/sys/net` always belong to the agent's namespace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.network_attributes import (
    NETWORK_CONNECTION_STATE,
    NETWORK_INTERFACE_NAME,
    NETWORK_IO_DIRECTION,
    NETWORK_TRANSPORT,
)
from opentelemetry.semconv._incubating.metrics import system_metrics as sm

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._hostview import DEFAULT_PROCFS, check_network_view
from ._linux.netdev import NetDev, ProtoCounters, parse_net_dev, parse_snmp
from ._linux.sockets import SocketCounts
from ._optional import OptionalFiles
from ._sockets import ConnectionSource, NetlinkSource, ProcNetSource

_log = logging.getLogger(__name__)

# Names without a semantic convention (docs/metrics.md).
TCP_OPEN = "sysops.tcp.open.type"
TCP_SYNCOOKIE = "sysops.tcp.syncookie.outcome"
TCP_ABORT = "sysops.tcp.abort.reason"
UDP_ERROR = "sysops.udp.error.type"
CONNTRACK_COUNT = "sysops.network.conntrack.count"
CONNTRACK_LIMIT = "sysops.network.conntrack.limit"

Attrs = dict[str, str]
Obs = Callable[[CallbackOptions], Iterable[Observation]]


@dataclass(frozen=True, slots=True)
class ProtoMetric:
    """A counter built from /proc/net/snmp or netstat fields: [(section, field, attributes)]."""

    name: str
    unit: str
    description: str
    fields: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]


def _one(section: str, name: str) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    return ((section, name, ()),)


def _many(
    section: str, attr: str, pairs: Iterable[tuple[str, str]]
) -> tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...]:
    return tuple((section, name, ((attr, value),)) for name, value in pairs)


# rfc1213 (Tcp, Udp of /proc/net/snmp) and the kernel's TcpExt (/proc/net/netstat).
PROTO_METRICS = (
    ProtoMetric(
        "sysops.tcp.segments",
        "{segment}",
        "TCP segments received and sent (Tcp InSegs, OutSegs)",
        _many("Tcp", NETWORK_IO_DIRECTION, [("InSegs", "receive"), ("OutSegs", "transmit")]),
    ),
    ProtoMetric(
        "sysops.tcp.retransmits", "{segment}", "TCP segments retransmitted", _one("Tcp", "RetransSegs")
    ),
    ProtoMetric("sysops.tcp.errors", "{segment}", "TCP segments received in error", _one("Tcp", "InErrs")),
    ProtoMetric("sysops.tcp.resets.sent", "{segment}", "TCP segments sent with RST", _one("Tcp", "OutRsts")),
    ProtoMetric(
        "sysops.tcp.opens",
        "{connection}",
        "TCP connections opened, active (connect) or passive (accept)",
        _many("Tcp", TCP_OPEN, [("ActiveOpens", "active"), ("PassiveOpens", "passive")]),
    ),
    ProtoMetric(
        "sysops.tcp.attempt_failures",
        "{connection}",
        "TCP connection attempts failed",
        _one("Tcp", "AttemptFails"),
    ),
    ProtoMetric(
        "sysops.tcp.established_resets",
        "{connection}",
        "TCP connections reset from ESTABLISHED or CLOSE_WAIT",
        _one("Tcp", "EstabResets"),
    ),
    ProtoMetric(
        "sysops.tcp.listen.overflows",
        "{connection}",
        "Connections dropped because a listen queue was full",
        _one("TcpExt", "ListenOverflows"),
    ),
    ProtoMetric(
        "sysops.tcp.listen.drops",
        "{connection}",
        "SYNs or connections dropped at a listening socket, for any reason",
        _one("TcpExt", "ListenDrops"),
    ),
    ProtoMetric(
        "sysops.tcp.syncookies",
        "{segment}",
        "SYN cookies sent, received valid, received invalid",
        _many(
            "TcpExt",
            TCP_SYNCOOKIE,
            [("SyncookiesSent", "sent"), ("SyncookiesRecv", "received"), ("SyncookiesFailed", "failed")],
        ),
    ),
    ProtoMetric(
        "sysops.tcp.timeouts", "{event}", "TCP retransmission timeouts", _one("TcpExt", "TCPTimeouts")
    ),
    ProtoMetric(
        "sysops.tcp.aborts",
        "{connection}",
        "TCP connections aborted, by reason",
        _many(
            "TcpExt",
            TCP_ABORT,
            [
                ("TCPAbortOnData", "data"),
                ("TCPAbortOnClose", "close"),
                ("TCPAbortOnMemory", "memory"),
                ("TCPAbortOnTimeout", "timeout"),
                ("TCPAbortOnLinger", "linger"),
                ("TCPAbortFailed", "failed"),
            ],
        ),
    ),
    ProtoMetric(
        "sysops.tcp.backlog.drops",
        "{segment}",
        "TCP segments dropped because the socket backlog was full",
        _one("TcpExt", "TCPBacklogDrop"),
    ),
    ProtoMetric(
        "sysops.tcp.memory.pressures",
        "{event}",
        "Times TCP entered memory pressure",
        _one("TcpExt", "TCPMemoryPressures"),
    ),
    ProtoMetric(
        "sysops.udp.datagrams",
        "{datagram}",
        "UDP datagrams received and sent",
        _many("Udp", NETWORK_IO_DIRECTION, [("InDatagrams", "receive"), ("OutDatagrams", "transmit")]),
    ),
    ProtoMetric(
        "sysops.udp.errors",
        "{datagram}",
        "UDP datagrams lost, by cause",
        _many(
            "Udp",
            UDP_ERROR,
            [
                ("InErrors", "receive"),
                ("NoPorts", "no_port"),
                ("RcvbufErrors", "receive_buffer"),
                ("SndbufErrors", "send_buffer"),
                ("InCsumErrors", "checksum"),
            ],
        ),
    ),
)

# /proc/net/dev column -> (instrument, network.io.direction)
_DEV_METRICS = {
    sm.SYSTEM_NETWORK_IO: (("rx_bytes", "receive"), ("tx_bytes", "transmit")),
    sm.SYSTEM_NETWORK_PACKET_COUNT: (("rx_packets", "receive"), ("tx_packets", "transmit")),
    sm.SYSTEM_NETWORK_ERRORS: (("rx_errs", "receive"), ("tx_errs", "transmit")),
    sm.SYSTEM_NETWORK_PACKET_DROPPED: (("rx_drop", "receive"), ("tx_drop", "transmit")),
}


@dataclass(slots=True)
class NetworkSnapshot:
    """One tick of network readings; a part that could not be read is None or empty."""

    dev: NetDev | None = None
    proto: ProtoCounters = field(default_factory=ProtoCounters)
    sockets: SocketCounts | None = None
    conntrack_count: int | None = None
    conntrack_limit: int | None = None


def interface_selected(name: str, include: list[str], exclude: list[str]) -> bool:
    """Decide whether an interface is reported: in `include` (empty: all) and not in `exclude`."""
    if include and not any(fnmatchcase(name, pat) for pat in include):
        return False
    return not any(fnmatchcase(name, pat) for pat in exclude)


def _same_netns(procfs: Path) -> bool:
    """Tell whether PID 1 of `procfs` lives in the agent's network namespace (False when unknowable)."""
    try:
        # {procfs}/self is the agent itself, whichever PID namespace the procfs belongs to.
        mine = os.stat(procfs / "self" / "ns" / "net")
        theirs = os.stat(procfs / "1" / "ns" / "net")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class NetworkCollector(Collector[NetworkSnapshot]):
    """`system.network.*` per interface and connection counts, `sysops.tcp.*`, `sysops.udp.*`, conntrack."""

    def __init__(
        self, ctx: CollectorContext, connection_sources: Sequence[ConnectionSource] | None = None
    ) -> None:
        """`connection_sources`: tried in order, the next one taking over for good when one fails."""
        super().__init__(ctx)
        cfg = ctx.settings.instrumentation.network
        self._cfg = cfg
        host_netns = cfg.host_netns if cfg.host_netns is not None else ctx.procfs != DEFAULT_PROCFS
        self.net_dir = ctx.procfs / "1" / "net" if host_netns else ctx.procfs / "net"
        self._dev_path = self.net_dir / "dev"
        conntrack = ctx.procfs / "sys" / "net" / "netfilter"
        self._conntrack = (conntrack / "nf_conntrack_count", conntrack / "nf_conntrack_max")
        # Each source file feeds only its own figures: the family is off only when none exists.
        sources = [self._dev_path, self.net_dir / "snmp", self.net_dir / "netstat", *self._conntrack]
        if not any(os.access(p, os.R_OK) for p in sources):
            raise CollectorUnavailableError(f"none of {self._dev_path}, snmp, netstat, conntrack is readable")
        self._optional = OptionalFiles(ctx)
        self._disabled: set[str] = set()
        self._sources: list[ConnectionSource] = []
        if connection_sources is not None:
            self._sources = list(connection_sources)
        elif cfg.connections:
            self._sources = self._default_sources(host_netns)
        check_network_view(ctx, self.net_dir)

    def _default_sources(self, host_netns: bool) -> list[ConnectionSource]:
        procnet = ProcNetSource(self.net_dir, self.ctx.files.read_text)
        choice = self._cfg.connection_source
        if choice == "procfs":
            return [procnet]
        if choice == "netlink":
            if host_netns:
                _log.info("network: netlink counts the agent's own namespace, not %s", self.net_dir)
            return [NetlinkSource(sockstat=self._sockstat)]
        # auto: netlink only when it sees the namespace being reported.
        if host_netns and not _same_netns(self.ctx.procfs):
            return [procnet]
        return [NetlinkSource(sockstat=self._sockstat), procnet]

    def _sockstat(self) -> str:
        # netlink counts the agent's namespace, so sockstat is the agent's too.
        own = self.ctx.procfs / "self" / "net"
        text = self.ctx.files.read_text(own / "sockstat")
        try:
            return text + self.ctx.files.read_text(own / "sockstat6")
        except FileNotFoundError:  # no IPv6
            return text

    @property
    def connection_source(self) -> str | None:
        """Name the source counting sockets now ("netlink", "procfs"), None when disabled."""
        return self._sources[0].name if self._sources else None

    def _disable(self, part: str, exc: OSError) -> None:
        self._disabled.add(part)
        _log.warning("network: %s disabled: %s", part, exc)

    def sample(self, now: float) -> NetworkSnapshot:
        snap = NetworkSnapshot()
        dev_text = self._optional.read(self._dev_path)
        if dev_text is not None:
            snap.dev = parse_net_dev(dev_text)
            self.ctx.count_error("malformed_line", snap.dev.malformed)
        for fname in ("snmp", "netstat"):
            text = self._optional.read(self.net_dir / fname)
            if text is not None:
                parse_snmp(text, snap.proto)
        self.ctx.count_error("malformed_line", snap.proto.malformed)
        snap.sockets = self._count_sockets()
        if "conntrack" not in self._disabled:
            snap.conntrack_count, snap.conntrack_limit = self._read_conntrack()
        return snap

    def _count_sockets(self) -> SocketCounts | None:
        while self._sources:
            source = self._sources[0]
            try:
                counts = source.count()
            except OSError as exc:
                self._sources.pop(0).close()
                after = self._sources[0].name if self._sources else "nothing"
                _log.warning(
                    "network: connection counting through %s failed (%s); using %s", source.name, exc, after
                )
                continue
            self.ctx.count_error("malformed_line", counts.malformed)
            return counts
        return None

    def _read_conntrack(self) -> tuple[int | None, int | None]:
        values: list[int | None] = []
        for path in self._conntrack:
            try:
                values.append(int(self.ctx.files.read_text(path).strip()))
            except FileNotFoundError:
                # No nf_conntrack module (yet: a container runtime may load it later).
                return None, None
            except OSError as exc:
                self._disable("conntrack", exc)
                return None, None
            except ValueError:
                self.ctx.count_error("malformed_line")
                values.append(None)
        return values[0], values[1]

    def close(self) -> None:
        for source in self._sources:
            source.close()

    # -- instruments -------------------------------------------------------------------------

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        descriptions = {
            sm.SYSTEM_NETWORK_IO: ("By", "Bytes received and sent per interface"),
            sm.SYSTEM_NETWORK_PACKET_COUNT: ("{packet}", "Packets received and sent per interface"),
            sm.SYSTEM_NETWORK_ERRORS: ("{error}", "Receive and transmit errors per interface (errs)"),
            sm.SYSTEM_NETWORK_PACKET_DROPPED: ("{packet}", "Packets dropped per interface (drop)"),
        }
        for name, columns in _DEV_METRICS.items():
            unit, description = descriptions[name]
            meter.create_observable_counter(name, [self._dev_callback(columns)], unit, description)
        meter.create_observable_up_down_counter(
            sm.SYSTEM_NETWORK_CONNECTION_COUNT,
            [self._connections],
            "{connection}",
            "IPv4 and IPv6 sockets by transport and TCP state",
        )
        for metric in PROTO_METRICS:
            meter.create_observable_counter(
                metric.name, [self._proto_callback(metric)], metric.unit, metric.description
            )
        meter.create_observable_up_down_counter(
            CONNTRACK_COUNT, [self._conntrack_count], "{entry}", "Connection tracking table entries"
        )
        meter.create_observable_up_down_counter(
            CONNTRACK_LIMIT, [self._conntrack_limit], "{entry}", "Connection tracking table size limit"
        )

    def _dev_callback(self, columns: tuple[tuple[str, str], ...]) -> Obs:
        include, exclude = self._cfg.include_interfaces, self._cfg.exclude_interfaces

        def callback(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is None or snap.dev is None:
                return
            for iface, values in snap.dev.interfaces.items():
                if not interface_selected(iface, include, exclude):
                    continue
                for column, direction in columns:
                    yield Observation(
                        values[column], {NETWORK_INTERFACE_NAME: iface, NETWORK_IO_DIRECTION: direction}
                    )

        return callback

    def _proto_callback(self, metric: ProtoMetric) -> Obs:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is None:
                return
            for section, name, attrs in metric.fields:
                value = snap.proto.values.get((section, name))
                if value is not None and value >= 0:
                    yield Observation(value, dict(attrs))

        return callback

    def _connections(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.sockets is None:
            return
        for (transport, state), n in sorted(snap.sockets.counts.items(), key=str):
            attrs: Attrs = {NETWORK_TRANSPORT: transport}
            if state is not None:
                attrs[NETWORK_CONNECTION_STATE] = state
            yield Observation(n, attrs)

    def _conntrack_count(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and self.snapshot.conntrack_count is not None:
            yield Observation(self.snapshot.conntrack_count)

    def _conntrack_limit(self, _: CallbackOptions) -> Iterable[Observation]:
        if self.snapshot is not None and self.snapshot.conntrack_limit is not None:
            yield Observation(self.snapshot.conntrack_limit)
