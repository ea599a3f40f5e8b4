"""Every pure parser of /proc, /sys and cgroup text, fed the format's own words mixed with Unicode
digits, huge integers and junk: it returns (skipping and counting what is malformed), never raises."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrumentation._linux import (
    cgroup,
    cpuinfo,
    diskstats,
    keyed,
    meminfo,
    mountinfo,
    netdev,
    oneline,
    pidstat,
    pressure,
    sockets,
    stat,
    swaps,
)
from tests.numbers import TRICKY_NUMBERS, tokens

WORDS = (
    "cpu",
    "cpu0",
    "intr",
    "ctxt",
    "MemTotal:",
    "kB",
    "some",
    "full",
    "avg10=",
    "avg60=",
    "avg300=",
    "total=",
    "8:0",
    "rbytes=",
    "wios=",
    "max",
    "Uid:",
    "root",
    "processor",
    "cpu MHz",
    "physical id",
    "core id",
    "sda",
    "eth0:",
    "Tcp:",
    "RtoMin",
    "/",
    "ext4",
    "rw",
    "-",
    "\\040",
    "sockets: used",
    "TCP: inuse",
    "/dev/sda2",
    "partition",
    "0A",
    "00000000:0016",
)

PARSERS: dict[str, Callable[[str], object]] = {
    "cgroup.parse_io_stat": cgroup.parse_io_stat,
    "cgroup.parse_single": cgroup.parse_single,
    "cpuinfo.parse_cpuinfo": cpuinfo.parse_cpuinfo,
    "diskstats.parse_diskstats": diskstats.parse_diskstats,
    "keyed.parse_flat_keyed": keyed.parse_flat_keyed,
    "meminfo.parse_meminfo": meminfo.parse_meminfo,
    "mountinfo.parse_mountinfo": mountinfo.parse_mountinfo,
    "netdev.parse_net_dev": netdev.parse_net_dev,
    "netdev.parse_snmp": netdev.parse_snmp,
    "oneline.parse_loadavg": oneline.parse_loadavg,
    "oneline.parse_uptime": oneline.parse_uptime,
    "oneline.parse_file_nr": oneline.parse_file_nr,
    "oneline.parse_int": oneline.parse_int,
    "pidstat.parse_pid_stat": pidstat.parse_pid_stat,
    "pidstat.parse_status_uid": pidstat.parse_status_uid,
    "pidstat.parse_passwd": pidstat.parse_passwd,
    "pressure.parse_pressure": pressure.parse_pressure,
    "sockets.parse_proc_net_sockets": lambda text: sockets.parse_proc_net_sockets(text, "tcp"),
    "sockets.parse_sockstat": sockets.parse_sockstat,
    "stat.parse_stat": stat.parse_stat,
    "swaps.parse_swaps": swaps.parse_swaps,
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=150, deadline=None)
@given(text=tokens(WORDS))
def test_no_parser_raises_on_tricky_numbers(name: str, text: str) -> None:
    PARSERS[name](text)


@pytest.mark.parametrize("name", sorted(PARSERS))
@pytest.mark.parametrize("number", TRICKY_NUMBERS)
def test_no_parser_raises_on_a_tricky_number_alone(name: str, number: str) -> None:
    PARSERS[name](number)
    PARSERS[name](f"{number}\n")


@pytest.mark.parametrize("number", ["²", "٣", "9" * 5000, "1" * 21, "-1", "1_0"])
def test_single_value_and_uid_files_refuse_what_is_no_ascii_counter(number: str) -> None:
    assert cgroup.parse_single(number) is None
    assert pidstat.parse_status_uid(f"Name:\tx\nUid:\t{number}\t0\t0\t0\n") is None
    users, malformed = pidstat.parse_passwd(f"root:x:0:0::/root:/bin/sh\nodd:x:{number}:0::/:/bin/sh\n")
    assert (users, malformed) == ({0: "root"}, 1)
    io = cgroup.parse_io_stat(f"8:0 rbytes={number} wbytes=1\n8:16 rbytes=5 wbytes=2\n")
    assert (io.values["rbytes"], io.malformed) == (5, 1)


@given(st.text())
def test_ascii_int_accepts_exactly_short_ascii_decimals(text: str) -> None:
    # Imported here: the parsers' tests above need no helper of theirs.
    from instrumentation._linux._numbers import ascii_int

    value = ascii_int(text)
    if text and len(text) <= 20 and all("0" <= c <= "9" for c in text):
        assert value == int(text)
    else:
        assert value is None
