"""Network stack: softnet per CPU, socket counts and memory (sockstat), conntrack events, IPv6
UDP (snmp6), IP and ICMP totals, the /proc/net/dev columns `network` leaves out, ARP entries.

Sources (proc(5)): {net}/softnet_stat, sockstat, sockstat6, stat/nf_conntrack, snmp, snmp6,
netstat, dev, arp, where {net} is chosen as for the `network` collector. Each file feeds only its
own figures: a missing one is counted (`missing_file`) and the rest reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER
from opentelemetry.semconv._incubating.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv._incubating.attributes.network_attributes import (
    NETWORK_INTERFACE_NAME,
    NETWORK_IO_DIRECTION,
    NETWORK_TRANSPORT,
    NETWORK_TYPE,
)

from otel_sysops.churn import ChurningMeter
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import Collector, CollectorContext

from ._linux.netdev import NetDev, ProtoCounters, parse_net_dev, parse_snmp
from ._linux.netstack import (
    ConntrackStat,
    Keyed,
    Softnet,
    parse_arp,
    parse_conntrack_stat,
    parse_snmp6,
    parse_sockstat,
    parse_softnet,
)
from ._netdir import net_dir
from ._optional import OptionalFiles
from .network import interface_selected

Obs = Callable[[CallbackOptions], Iterable[Observation]]

SOCKET_STATE = "sysops.socket.state"
CONNTRACK_EVENT = "sysops.conntrack.event"
SOFTNET = {
    "sysops.network.softnet.processed": (0, "{packet}", "Packets processed by the CPU's softnet backlog"),
    "sysops.network.softnet.dropped": (1, "{packet}", "Packets dropped because the backlog was full"),
    "sysops.network.softnet.time_squeezes": (
        2,
        "{event}",
        "Times net_rx_action stopped with work left (budget or time exhausted)",
    ),
}
# sockstat protocol -> (network.transport, network.type); FRAG is IP reassembly, not a transport.
SOCKSTAT_PROTOCOLS = {
    "TCP": ("tcp", "ipv4"),
    "UDP": ("udp", "ipv4"),
    "UDPLITE": ("udplite", "ipv4"),
    "RAW": ("raw", "ipv4"),
    "FRAG": ("fragment", "ipv4"),
    "TCP6": ("tcp", "ipv6"),
    "UDP6": ("udp", "ipv6"),
    "UDPLITE6": ("udplite", "ipv6"),
    "RAW6": ("raw", "ipv6"),
    "FRAG6": ("fragment", "ipv6"),
}
SOCKSTAT_STATES = {"inuse": "in_use", "orphan": "orphan", "tw": "time_wait", "alloc": "allocated"}
# /proc/net/dev columns with no semantic convention: (column, direction, error.type)
DEV_ERRORS = (
    ("rx_fifo", "receive", "fifo"),
    ("tx_fifo", "transmit", "fifo"),
    ("rx_frame", "receive", "frame"),
    ("tx_colls", "transmit", "collision"),
    ("tx_carrier", "transmit", "carrier"),
)
UDP6 = {
    "sysops.udp6.datagrams": (
        "{datagram}",
        "UDP over IPv6 datagrams received and sent",
        (
            ("Udp6InDatagrams", NETWORK_IO_DIRECTION, "receive"),
            ("Udp6OutDatagrams", NETWORK_IO_DIRECTION, "transmit"),
        ),
    ),
    "sysops.udp6.errors": (
        "{datagram}",
        "UDP over IPv6 datagrams lost, by cause",
        (
            ("Udp6InErrors", "sysops.udp.error.type", "receive"),
            ("Udp6NoPorts", "sysops.udp.error.type", "no_port"),
            ("Udp6RcvbufErrors", "sysops.udp.error.type", "receive_buffer"),
            ("Udp6SndbufErrors", "sysops.udp.error.type", "send_buffer"),
            ("Udp6InCsumErrors", "sysops.udp.error.type", "checksum"),
        ),
    ),
}


@dataclass(slots=True)
class NetStackSnapshot:
    """This tick's readings; a part whose file could not be read is None."""

    softnet: Softnet | None = None
    sockstat: Keyed | None = None
    conntrack: ConntrackStat | None = None
    snmp6: Keyed | None = None
    proto: ProtoCounters = field(default_factory=ProtoCounters)
    dev: NetDev | None = None
    arp: dict[str, int] | None = None


class NetStackCollector(Collector[NetStackSnapshot]):
    """`sysops.network.softnet.*`, `.sockets`, `.socket.memory`, `.conntrack.events`, `sysops.udp6.*`,
    `sysops.ip.*`, `sysops.icmp.*`, `sysops.network.interface.*` extras and `.arp.entries`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.net_dir = net_dir(ctx)
        self._conntrack_stat = self.net_dir / "stat" / "nf_conntrack"
        self._files = ("softnet_stat", "sockstat", "snmp6", "snmp", "netstat", "dev", "arp")
        if not any(os.access(self.net_dir / name, os.R_OK) for name in self._files):
            raise CollectorUnavailableError(
                f"none of {', '.join(self._files)} under {self.net_dir} is readable"
            )
        self._optional = OptionalFiles(ctx)
        self._page = os.sysconf("SC_PAGE_SIZE")
        cfg = ctx.settings.instrumentation.network
        self._include, self._exclude = cfg.include_interfaces, cfg.exclude_interfaces

    def sample(self, now: float) -> NetStackSnapshot:
        snap = NetStackSnapshot()
        read = self._optional.read
        count = self.ctx.count_error
        if (text := read(self.net_dir / "softnet_stat")) is not None:
            snap.softnet = parse_softnet(text)
            count("malformed_line", snap.softnet.malformed)
        if (text := read(self.net_dir / "sockstat")) is not None:
            snap.sockstat = parse_sockstat(text)
            # sockstat6 is absent without IPv6: normal, not counted.
            if (text6 := read(self.net_dir / "sockstat6", counted=False)) is not None:
                parse_sockstat(text6, snap.sockstat)
            count("malformed_line", snap.sockstat.malformed)
        # No conntrack module loaded: normal, not counted.
        if (text := read(self._conntrack_stat, counted=False)) is not None:
            snap.conntrack = parse_conntrack_stat(text)
            count("malformed_line", snap.conntrack.malformed)
        if (text := read(self.net_dir / "snmp6", counted=False)) is not None:
            snap.snmp6 = parse_snmp6(text)
            count("malformed_line", snap.snmp6.malformed)
        for name in ("snmp", "netstat"):
            if (text := read(self.net_dir / name)) is not None:
                parse_snmp(text, snap.proto)
        count("malformed_line", snap.proto.malformed)
        if (text := read(self.net_dir / "dev")) is not None:
            snap.dev = parse_net_dev(text)
            count("malformed_line", snap.dev.malformed)
        if (text := read(self.net_dir / "arp")) is not None:
            snap.arp, bad = parse_arp(text)
            count("malformed_line", bad)
        return snap

    # -- instruments -------------------------------------------------------------------------

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        for name, (column, unit, description) in SOFTNET.items():
            meter.create_observable_counter(name, [self._softnet(column)], unit, description)
        meter.create_observable_up_down_counter(
            "sysops.network.sockets",
            [self._sockets],
            "{socket}",
            "Sockets by transport, IP version and state",
        )
        meter.create_observable_up_down_counter(
            "sysops.network.sockets.used", [self._sockets_used], "{socket}", "Sockets of any kind in use"
        )
        meter.create_observable_up_down_counter(
            "sysops.network.socket.memory",
            [self._socket_memory],
            "By",
            "Memory held by socket buffers (TCP, UDP) and IP reassembly queues",
        )
        meter.create_observable_counter(
            "sysops.network.conntrack.events",
            [self._conntrack],
            "{event}",
            "Connection-tracking events summed over CPUs (found, invalid, insert_failed, drop, ...)",
        )
        for name, (unit, description, fields) in UDP6.items():
            meter.create_observable_counter(name, [self._snmp6(fields)], unit, description)
        meter.create_observable_counter(
            "sysops.ip.octets", [self._ip_octets], "By", "IP octets received and sent, by IP version"
        )
        meter.create_observable_counter(
            "sysops.icmp.messages", [self._icmp_messages], "{message}", "ICMP messages received and sent"
        )
        meter.create_observable_counter(
            "sysops.icmp.errors", [self._icmp_errors], "{message}", "ICMP messages received in error"
        )
        meter.create_observable_gauge(
            "sysops.ip.forwarding", [self._forwarding], "1", "IPv4 forwarding enabled (1) or not (0)"
        )
        meter.create_observable_counter(
            "sysops.tcp.syn_retransmits", [self._syn_retrans], "{segment}", "SYN segments retransmitted"
        )
        meter.create_observable_counter(
            "sysops.network.interface.errors",
            [self._dev_errors],
            "{error}",
            "Interface errors beyond errs: FIFO overruns, framing, collisions, carrier losses",
        )
        meter.create_observable_counter(
            "sysops.network.interface.multicast",
            [self._dev_column("rx_multicast", "receive")],
            "{packet}",
            "Multicast packets received",
        )
        meter.create_observable_counter(
            "sysops.network.interface.compressed",
            [self._dev_column("rx_compressed", "receive"), self._dev_column("tx_compressed", "transmit")],
            "{packet}",
            "Compressed packets received and sent (cslip, ppp)",
        )
        meter.create_observable_up_down_counter(
            "sysops.network.arp.entries", [self._arp], "{entry}", "ARP (IPv4 neighbour) entries per interface"
        )

    def _softnet(self, column: int) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.softnet is not None:
                for cpu, values in snap.softnet.cpus.items():
                    yield Observation(values[column], {CPU_LOGICAL_NUMBER: cpu})

        return observe

    def _sockets(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.sockstat is None:
            return
        for (proto, key), value in snap.sockstat.values.items():
            where, state = SOCKSTAT_PROTOCOLS.get(proto), SOCKSTAT_STATES.get(key)
            if where is not None and state is not None:
                yield Observation(
                    value, {NETWORK_TRANSPORT: where[0], NETWORK_TYPE: where[1], SOCKET_STATE: state}
                )

    def _sockets_used(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.sockstat is not None:
            value = snap.sockstat.values.get(("sockets", "used"))
            if value is not None:
                yield Observation(value)

    def _socket_memory(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None or snap.sockstat is None:
            return
        for (proto, key), value in snap.sockstat.values.items():
            where = SOCKSTAT_PROTOCOLS.get(proto)
            if where is None:
                continue
            if key == "mem":  # TCP and UDP memory is in pages
                yield Observation(value * self._page, {NETWORK_TRANSPORT: where[0], NETWORK_TYPE: where[1]})
            elif key == "memory":  # FRAG memory is in bytes
                yield Observation(value, {NETWORK_TRANSPORT: where[0], NETWORK_TYPE: where[1]})

    def _conntrack(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None and snap.conntrack is not None:
            for name, value in snap.conntrack.totals.items():
                if name not in ("entries", "chainlength"):  # a count and a maximum, not events
                    yield Observation(value, {CONNTRACK_EVENT: name})

    def _snmp6(self, fields: tuple[tuple[str, str, str], ...]) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            snap = self.snapshot
            if snap is not None and snap.snmp6 is not None:
                for name, attr, value in fields:
                    if ("", name) in snap.snmp6.values:
                        yield Observation(snap.snmp6.values[("", name)], {attr: value})

        return observe

    def _pairs(
        self, pairs: Iterable[tuple[Keyed | ProtoCounters | None, tuple[str, str], dict[str, str]]]
    ) -> Iterable[Observation]:
        for source, where, attrs in pairs:
            if source is not None and where in source.values:
                yield Observation(source.values[where], attrs)

    def _ip_octets(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        yield from self._pairs(
            (
                (snap.proto, ("IpExt", "InOctets"), {NETWORK_TYPE: "ipv4", NETWORK_IO_DIRECTION: "receive"}),
                (
                    snap.proto,
                    ("IpExt", "OutOctets"),
                    {NETWORK_TYPE: "ipv4", NETWORK_IO_DIRECTION: "transmit"},
                ),
                (snap.snmp6, ("", "Ip6InOctets"), {NETWORK_TYPE: "ipv6", NETWORK_IO_DIRECTION: "receive"}),
                (snap.snmp6, ("", "Ip6OutOctets"), {NETWORK_TYPE: "ipv6", NETWORK_IO_DIRECTION: "transmit"}),
            )
        )

    def _icmp_messages(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        yield from self._pairs(
            (
                (snap.proto, ("Icmp", "InMsgs"), {NETWORK_TYPE: "ipv4", NETWORK_IO_DIRECTION: "receive"}),
                (snap.proto, ("Icmp", "OutMsgs"), {NETWORK_TYPE: "ipv4", NETWORK_IO_DIRECTION: "transmit"}),
                (snap.snmp6, ("", "Icmp6InMsgs"), {NETWORK_TYPE: "ipv6", NETWORK_IO_DIRECTION: "receive"}),
                (snap.snmp6, ("", "Icmp6OutMsgs"), {NETWORK_TYPE: "ipv6", NETWORK_IO_DIRECTION: "transmit"}),
            )
        )

    def _icmp_errors(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        yield from self._pairs(
            (
                (snap.proto, ("Icmp", "InErrors"), {NETWORK_TYPE: "ipv4"}),
                (snap.snmp6, ("", "Icmp6InErrors"), {NETWORK_TYPE: "ipv6"}),
            )
        )

    def _forwarding(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        # RFC 1213 ipForwarding: 1 forwarding, 2 not forwarding.
        value = None if snap is None else snap.proto.values.get(("Ip", "Forwarding"))
        if value in (1, 2):
            yield Observation(1 if value == 1 else 0)

    def _syn_retrans(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is not None:
            yield from self._pairs(((snap.proto, ("TcpExt", "TCPSynRetrans"), {}),))

    def _interfaces(self) -> Iterable[tuple[str, dict[str, int]]]:
        snap = self.snapshot
        if snap is None or snap.dev is None:
            return
        for iface, values in snap.dev.interfaces.items():
            if interface_selected(iface, self._include, self._exclude):
                yield iface, values

    def _dev_errors(self, _: CallbackOptions) -> Iterable[Observation]:
        for iface, values in self._interfaces():
            for column, direction, kind in DEV_ERRORS:
                yield Observation(
                    values[column],
                    {NETWORK_INTERFACE_NAME: iface, NETWORK_IO_DIRECTION: direction, ERROR_TYPE: kind},
                )

    def _dev_column(self, column: str, direction: str) -> Obs:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for iface, values in self._interfaces():
                yield Observation(
                    values[column], {NETWORK_INTERFACE_NAME: iface, NETWORK_IO_DIRECTION: direction}
                )

        return observe

    def _arp(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        for iface, n in ({} if snap is None or snap.arp is None else snap.arp).items():
            yield Observation(n, {NETWORK_INTERFACE_NAME: iface})
