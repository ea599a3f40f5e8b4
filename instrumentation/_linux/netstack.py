"""Parse the kernel network-stack files beyond net/dev and snmp (proc(5)).

- /proc/net/softnet_stat: one line per CPU of hexadecimal counters; column 1 packets processed,
  2 dropped (backlog full), 3 time_squeeze (net_rx_action ran out of budget or time).
- /proc/net/sockstat, sockstat6: `PROTO: key value key value ...`.
- /proc/net/stat/nf_conntrack: a header line of names, then one line of hexadecimal per CPU.
- /proc/net/snmp6: `Name value` lines (Udp6InDatagrams 12).
- /proc/net/arp: a header, then one line per neighbour entry; column 6 is the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Softnet:
    """Per-CPU softnet counters: cpu -> (processed, dropped, time_squeeze)."""

    cpus: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_softnet(text: str) -> Softnet:
    """Return the three counters per CPU; line N is CPU N unless column 13 names the CPU (4.18+)."""
    out = Softnet()
    for row, line in enumerate(text.splitlines()):
        parts = line.split()
        if not parts:
            continue
        try:
            if len(parts) < 3:
                raise ValueError(line)
            values = [int(v, 16) for v in parts]
            cpu = values[12] if len(values) >= 13 else row
        except ValueError:
            out.malformed += 1
            continue
        out.cpus[cpu] = (values[0], values[1], values[2])
    return out


@dataclass(slots=True)
class Keyed:
    """(section, key) -> value, and the lines that did not parse."""

    values: dict[tuple[str, str], int] = field(default_factory=dict)
    malformed: int = 0


def parse_sockstat(text: str, out: Keyed | None = None) -> Keyed:
    """Return (protocol, key) -> value of every `PROTO: key value ...` line."""
    out = Keyed() if out is None else out
    for line in text.splitlines():
        proto, sep, rest = line.partition(":")
        words = rest.split()
        if not line.strip():
            continue
        if not sep or not words or len(words) % 2:
            out.malformed += 1
            continue
        try:
            pairs = [(words[i], int(words[i + 1])) for i in range(0, len(words), 2)]
        except ValueError:
            out.malformed += 1
            continue
        for name, value in pairs:
            out.values[(proto.strip(), name)] = value
    return out


@dataclass(slots=True)
class ConntrackStat:
    """The per-CPU conntrack event counters of /proc/net/stat/nf_conntrack, summed over CPUs."""

    totals: dict[str, int] = field(default_factory=dict)
    malformed: int = 0


def parse_conntrack_stat(text: str) -> ConntrackStat:
    """Sum each named column over the CPU lines (the first column, `entries`, is global: kept once)."""
    out = ConntrackStat()
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines:
        return out
    header = lines[0]
    for parts in lines[1:]:
        if len(parts) != len(header):
            out.malformed += 1
            continue
        try:
            values = [int(v, 16) for v in parts]
        except ValueError:
            out.malformed += 1
            continue
        for name, value in zip(header, values, strict=True):
            if name == "entries":
                out.totals[name] = value
            else:
                out.totals[name] = out.totals.get(name, 0) + value
    return out


def parse_snmp6(text: str) -> Keyed:
    """Return ("", name) -> value for every `Name value` line of /proc/net/snmp6."""
    out = Keyed()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            out.malformed += 1
            continue
        try:
            out.values[("", parts[0])] = int(parts[1])
        except ValueError:
            out.malformed += 1
    return out


def parse_arp(text: str) -> tuple[dict[str, int], int]:
    """Return (device -> neighbour entries, malformed lines) from /proc/net/arp."""
    counts: dict[str, int] = {}
    malformed = 0
    for line in text.splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            malformed += 1
            continue
        counts[parts[5]] = counts.get(parts[5], 0) + 1
    return counts, malformed
