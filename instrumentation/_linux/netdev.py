"""Parse /proc/net/dev (proc(5)) and /proc/net/snmp, /proc/net/netstat."""

from __future__ import annotations

from dataclasses import dataclass, field

# proc(5): the 16 counters of a /proc/net/dev line, receive then transmit.
NETDEV_COLUMNS = (
    "rx_bytes",
    "rx_packets",
    "rx_errs",
    "rx_drop",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errs",
    "tx_drop",
    "tx_fifo",
    "tx_colls",
    "tx_carrier",
    "tx_compressed",
)


@dataclass(slots=True)
class NetDev:
    """Counters of every interface in /proc/net/dev."""

    interfaces: dict[str, dict[str, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_net_dev(text: str) -> NetDev:
    """Return interface -> column -> value; the two header lines are skipped, bad lines counted."""
    out = NetDev()
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if not sep or "|" in line:
            # The two header lines have "|" and no ":"; anything else without ":" is broken.
            if line.strip() and "|" not in line:
                out.malformed += 1
            continue
        name = name.strip()
        parts = rest.split()
        if not name or len(parts) != len(NETDEV_COLUMNS):
            out.malformed += 1
            continue
        try:
            values = [int(v) for v in parts]
        except ValueError:
            out.malformed += 1
            continue
        if any(v < 0 for v in values):
            out.malformed += 1
            continue
        out.interfaces[name] = dict(zip(NETDEV_COLUMNS, values, strict=True))
    return out


@dataclass(slots=True)
class ProtoCounters:
    """Counters of /proc/net/snmp and netstat by (section, field), e.g. ("Tcp", "RetransSegs")."""

    values: dict[tuple[str, str], int] = field(default_factory=dict)
    malformed: int = 0


def parse_snmp(text: str, into: ProtoCounters | None = None) -> ProtoCounters:
    """Parse the `Section: names` / `Section: values` line pairs of /proc/net/snmp or netstat."""
    out = ProtoCounters() if into is None else into
    header: tuple[str, list[str]] | None = None
    for line in text.splitlines():
        section, sep, rest = line.partition(":")
        if not line.strip():
            continue
        if not sep or not section or " " in section:
            out.malformed += 1
            header = None
            continue
        words = rest.split()
        if header is None or header[0] != section:
            header = (section, words)
            continue
        names = header[1]
        header = None
        if len(words) != len(names):
            out.malformed += 1
            continue
        for name, word in zip(names, words, strict=True):
            try:
                out.values[(section, name)] = int(word)
            except ValueError:
                out.malformed += 1
    if header is not None:  # a names line with no values line (truncated file)
        out.malformed += 1
    return out
