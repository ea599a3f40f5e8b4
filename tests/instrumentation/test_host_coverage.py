"""The host-coverage collectors on a frozen two-socket server (tests/fixtures/server2s, written from
proc(5), md(4), Documentation/ABI and bonding.rst): every family reports, and every value is
checked against the fixture's files read a second, independent way here."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.kernel import parse_cpu_table, parse_schedstat, parse_stat_totals
from instrumentation._linux.mdstat import parse_mdstat
from instrumentation._linux.memzones import parse_buddyinfo, parse_zoneinfo
from instrumentation._linux.netstack import (
    parse_arp,
    parse_conntrack_stat,
    parse_snmp6,
    parse_sockstat,
    parse_softnet,
)
from instrumentation._linux.timex import STA_UNSYNC, Timex
from instrumentation.cpuhw import CpuHwCollector
from instrumentation.kernel import KernelCollector
from instrumentation.mdraid import MdRaidCollector
from instrumentation.memdetail import MemDetailCollector
from instrumentation.netclass import NetClassCollector
from instrumentation.netstack import NetStackCollector
from instrumentation.sensors import SensorsCollector
from instrumentation.timesync import TimeCollector
from tests.conftest import FIXTURES
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

HZ = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
IFACE = "network.interface.name"
CPU = "cpu.logical_number"


@pytest.fixture
def server(tmp_path: Path) -> Host:
    return Host(FIXTURES / "server2s", tmp_path / "host")


def _text(host: Host, rel: str) -> str:
    return (host.root / rel).read_text()


# -- network stack --------------------------------------------------------------------------------


def test_netstack_softnet_sockets_conntrack_ipv6_icmp_and_arp(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "netstack", NetStackCollector)
    values = points(pipe.tick().data)
    # softnet_stat: hexadecimal; line N is CPU N.
    for cpu, line in enumerate(_text(server, "proc/1/net/softnet_stat").splitlines()):
        cols = [int(v, 16) for v in line.split()]
        assert values[key("sysops.network.softnet.processed", **{CPU: cpu})] == cols[0]
        assert values[key("sysops.network.softnet.dropped", **{CPU: cpu})] == cols[1]
        assert values[key("sysops.network.softnet.time_squeezes", **{CPU: cpu})] == cols[2]
    assert len(of(values, "sysops.network.softnet.processed")) == 8
    # sockstat: "TCP: inuse 210 orphan 3 tw 480 alloc 260 mem 4096"
    tcp = _text(server, "proc/1/net/sockstat").splitlines()[1].split()
    tcp_fields = dict(zip(tcp[1::2], map(int, tcp[2::2]), strict=True))
    sock = {"network.transport": "tcp", "network.type": "ipv4"}
    assert (
        values[key("sysops.network.sockets", **sock, **{"sysops.socket.state": "in_use"})]
        == tcp_fields["inuse"]
    )
    assert (
        values[key("sysops.network.sockets", **sock, **{"sysops.socket.state": "time_wait"})]
        == tcp_fields["tw"]
    )
    assert (
        values[key("sysops.network.sockets", **sock, **{"sysops.socket.state": "orphan"})]
        == tcp_fields["orphan"]
    )
    assert values[key("sysops.network.socket.memory", **sock)] == tcp_fields["mem"] * PAGE
    v6 = {"network.transport": "tcp", "network.type": "ipv6", "sysops.socket.state": "in_use"}
    assert values[key("sysops.network.sockets", **v6)] == 45
    assert values[key("sysops.network.sockets.used")] == 1234
    # nf_conntrack stat: per-CPU hexadecimal columns summed.
    rows = _text(server, "proc/1/net/stat/nf_conntrack").split("\n")
    header, body = rows[0].split(), [r.split() for r in rows[1:] if r]
    for column in ("found", "invalid", "insert_failed", "drop", "early_drop", "search_restart"):
        i = header.index(column)
        expected = sum(int(r[i], 16) for r in body)
        assert (
            values[key("sysops.network.conntrack.events", **{"sysops.conntrack.event": column})] == expected
        )
    assert not any(
        dict(a)["sysops.conntrack.event"] == "entries" for a in of(values, "sysops.network.conntrack.events")
    )
    # snmp6
    snmp6 = dict(line.split() for line in _text(server, "proc/1/net/snmp6").splitlines())
    assert values[key("sysops.udp6.datagrams", **{"network.io.direction": "receive"})] == int(
        snmp6["Udp6InDatagrams"]
    )
    assert values[key("sysops.udp6.errors", **{"sysops.udp.error.type": "no_port"})] == int(
        snmp6["Udp6NoPorts"]
    )
    ip6 = {"network.type": "ipv6", "network.io.direction": "transmit"}
    assert values[key("sysops.ip.octets", **ip6)] == int(snmp6["Ip6OutOctets"])
    assert values[key("sysops.icmp.messages", **ip6)] == int(snmp6["Icmp6OutMsgs"])
    assert values[key("sysops.icmp.errors", **{"network.type": "ipv6"})] == int(snmp6["Icmp6InErrors"])
    # snmp / netstat (IPv4)
    assert (
        values[key("sysops.ip.octets", **{"network.type": "ipv4", "network.io.direction": "receive"})]
        == 987654321
    )
    assert (
        values[key("sysops.icmp.messages", **{"network.type": "ipv4", "network.io.direction": "receive"})]
        == 321
    )
    assert values[key("sysops.ip.forwarding")] == 1
    assert values[key("sysops.tcp.syn_retransmits")] == 66
    # net/dev columns 5, 6 and 14, 15 (fifo, frame, colls, carrier), 8 (multicast)
    for line in _text(server, "proc/1/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        cols = [int(v) for v in rest.split()]
        base = {IFACE: name.strip()}
        err = "sysops.network.interface.errors"
        assert (
            values[key(err, **base, **{"network.io.direction": "receive", "error.type": "fifo"})] == cols[4]
        )
        assert (
            values[key(err, **base, **{"network.io.direction": "receive", "error.type": "frame"})] == cols[5]
        )
        assert (
            values[key(err, **base, **{"network.io.direction": "transmit", "error.type": "collision"})]
            == cols[13]
        )
        assert (
            values[key(err, **base, **{"network.io.direction": "transmit", "error.type": "carrier"})]
            == cols[14]
        )
        multicast = key("sysops.network.interface.multicast", **base, **{"network.io.direction": "receive"})
        assert values[multicast] == cols[7]
    assert of(values, "sysops.network.arp.entries") == {
        frozenset({(IFACE, "bond0")}): 2,
        frozenset({(IFACE, "eth1")}): 1,
    }
    assert errors(pipe, "netstack") == {}


def test_netstack_missing_file_disables_only_its_figures(server: Host, pipeline_for: Build) -> None:
    (server.procfs / "1" / "net" / "softnet_stat").unlink()
    (server.procfs / "1" / "net" / "sockstat").chmod(0)
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "netstack", NetStackCollector)
    values = points(pipe.tick().data)
    assert not of(values, "sysops.network.softnet.processed")
    assert of(values, "sysops.udp6.datagrams")
    assert of(values, "sysops.network.arp.entries")
    counted = errors(pipe, "netstack")
    assert counted["missing_file"] == 1
    if os.geteuid() != 0:  # root reads a mode-0 file anyway
        assert counted["permission"] == 1
        assert not of(values, "sysops.network.sockets")


# -- interfaces (sysfs) ---------------------------------------------------------------------------


def test_netclass_link_state_speed_mtu_and_bond_slaves(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "netclass", NetClassCollector)
    values = points(pipe.tick().data)
    net = server.sysfs / "class" / "net"
    for name in os.listdir(net):
        attr = {IFACE: name}
        operstate = (net / name / "operstate").read_text().strip()
        assert values[key("sysops.network.interface.up", **attr)] == (operstate == "up")
        assert values[key("sysops.network.interface.mtu", **attr)] == int((net / name / "mtu").read_text())
        if (net / name / "carrier").exists():
            assert values[key("sysops.network.interface.carrier", **attr)] == int(
                (net / name / "carrier").read_text()
            )
        else:
            assert key("sysops.network.interface.carrier", **attr) not in values
        down = {**attr, "sysops.network.carrier.direction": "down"}
        expected = int((net / name / "carrier_down_count").read_text())
        assert values[key("sysops.network.interface.carrier.changes", **down)] == expected
        # The first reading is the window's start: no flaps yet.
        assert values[key("sysops.network.interface.carrier.flaps", **attr)] == 0
    assert values[key("sysops.network.interface.speed", **{IFACE: "eth0"})] == 25_000 * 10**6
    assert key("sysops.network.interface.speed", **{IFACE: "lo"}) not in values
    bond = {IFACE: "bond0"}
    assert values[key("sysops.network.bond.slaves", **bond, **{"sysops.network.bond.slave.state": "up"})] == 1
    assert (
        values[key("sysops.network.bond.slaves", **bond, **{"sysops.network.bond.slave.state": "down"})] == 1
    )
    # hw.network.up: physical adapters and bonds that are administratively up (flags & IFF_UP);
    # eno1 is down on purpose and lo is neither: not reported.
    links = {dict(a)["hw.id"]: v for a, v in of(values, "hw.network.up").items()}
    assert links == {"eth0": 1, "eth1": 0, "bond0": 1}
    info = next(a for a in of(values, "sysops.network.interface.info") if dict(a)[IFACE] == "eth0")
    assert dict(info)["sysops.network.interface.duplex"] == "full"
    assert errors(pipe, "netclass") == {}


def test_netclass_counts_flaps_within_the_window(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    collector = add(pipe, settings, "netclass", NetClassCollector)
    changes = server.sysfs / "class" / "net" / "eth1" / "carrier_changes"
    collector.collect(1000.0)
    changes.write_text("11\n")  # four more changes 60 s later
    collector.collect(1060.0)
    assert collector.snapshot.flaps["eth1"] == 4
    collector.collect(1400.0)  # the earlier readings have left the five-minute window
    assert collector.snapshot.flaps["eth1"] == 0


# -- time -----------------------------------------------------------------------------------------


class RecordedTimex:
    """adjtimex values recorded from an NTP-synchronised server, replayed (STA_PLL | STA_NANO)."""

    def __init__(self, status: int = 0x2001, state: int = 0) -> None:
        self.status, self.state = status, state

    def read(self) -> Timex:
        return Timex(
            self.state,
            self.status,
            0.000012,
            1 + 12.5e-6,
            0.0405,
            0.0002,
            7,
            0.01,
            37,
            0.0,
            0.0,
            0,
            0.0,
            0,
            0,
            0,
            0,
        )


def test_time_offset_errors_sync_and_clocksources(server: Host, pipeline_for: Build) -> None:
    source = RecordedTimex()
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "time", TimeCollector, source=source)
    values = points(pipe.tick().data)
    assert values[key("sysops.time.sync.status")] == 1
    assert values[key("sysops.time.offset")] == 0.000012
    assert values[key("sysops.time.max_error")] == 0.0405
    assert values[key("sysops.time.tai_offset")] == 37
    base = server.sysfs / "devices" / "system" / "clocksource" / "clocksource0"
    current = base.joinpath("current_clocksource").read_text().strip()
    available = base.joinpath("available_clocksource").read_text().split()
    sources = {
        (dict(a)["sysops.time.clocksource.name"], dict(a)["sysops.time.clocksource.state"])
        for a in of(values, "sysops.time.clocksource")
    }
    assert sources == {(current, "current"), *((n, "available") for n in available)}
    source.status |= STA_UNSYNC  # the NTP daemon stopped: the kernel marks the clock unsynchronised
    assert points(pipe.tick().data)[key("sysops.time.sync.status")] == 0


def test_time_on_this_machine_through_adjtimex(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "time", TimeCollector)
    values = points(pipe.tick().data)
    assert values[key("sysops.time.sync.status")] in (0, 1)
    assert values[key("sysops.time.max_error")] >= 0
    assert values[key("sysops.time.tick")] == pytest.approx(1 / os.sysconf("SC_CLK_TCK"), rel=0.5)


# -- kernel ---------------------------------------------------------------------------------------


def test_kernel_counters_softirqs_schedstat_entropy_hung(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "kernel", KernelCollector)
    values = points(pipe.tick().data)
    stat = {line.split()[0]: line.split()[1:] for line in _text(server, "proc/stat").splitlines()}
    assert values[key("sysops.cpu.context_switches")] == int(stat["ctxt"][0])
    assert values[key("sysops.cpu.interrupts")] == int(stat["intr"][0])
    assert values[key("sysops.kernel.tasks", **{"sysops.task.state": "runnable"})] == int(
        stat["procs_running"][0]
    )
    assert values[key("sysops.kernel.tasks", **{"sysops.task.state": "blocked"})] == int(
        stat["procs_blocked"][0]
    )
    assert values[key("sysops.kernel.boot_time")] == int(stat["btime"][0])
    for cpu in range(8):
        guest = int(stat[f"cpu{cpu}"][8])
        assert values[key("sysops.cpu.guest.time", **{CPU: cpu, "cpu.mode": "guest"})] == guest / HZ
    softirqs = _text(server, "proc/softirqs").splitlines()[1:]
    for line in softirqs:
        name, _, counts = line.partition(":")
        total = sum(int(v) for v in counts.split())
        assert values[key("sysops.cpu.softirqs", **{"sysops.softirq.type": name.strip().lower()})] == total
    assert len(of(values, "sysops.cpu.softirqs")) == len(softirqs)
    for line in _text(server, "proc/schedstat").splitlines():
        if re.match(r"cpu\d", line):
            f = line.split()
            of_cpu = {CPU: int(f[0][3:])}
            assert values[key("sysops.cpu.schedstat.running", **of_cpu)] == pytest.approx(int(f[7]) / 1e9)
            assert values[key("sysops.cpu.schedstat.waiting", **of_cpu)] == pytest.approx(int(f[8]) / 1e9)
    assert values[key("sysops.kernel.entropy.available")] == 256
    assert values[key("sysops.kernel.hung_tasks")] == 3
    assert values[key("sysops.kernel.watchdog.enabled")] == 1
    # Interrupts per CPU are off by default (CPUs x lines series).
    assert not of(values, "sysops.cpu.interrupts.per_cpu")
    assert errors(pipe, "kernel") == {}


def test_kernel_interrupts_per_cpu_when_enabled(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server, instrumentation={"kernel": {"interrupts_per_cpu": True}})
    add(pipe, settings, "kernel", KernelCollector)
    values = of(points(pipe.tick().data), "sysops.cpu.interrupts.per_cpu")
    lines = _text(server, "proc/interrupts").splitlines()[1:]
    per_cpu = [line for line in lines if len(line.split()) > 8]
    assert len(values) == len(per_cpu) * 8
    first = per_cpu[0].split()
    assert values[frozenset({("sysops.interrupt.name", first[0].rstrip(":")), (CPU, 3)})] == int(first[4])


# -- CPU hardware ---------------------------------------------------------------------------------


def test_cpu_hw_frequency_limits_governors_throttles_vulnerabilities(
    server: Host, pipeline_for: Build
) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "cpu_hw", CpuHwCollector)
    values = points(pipe.tick().data)
    cpus = server.sysfs / "devices" / "system" / "cpu"
    for cpu in range(8):
        freq = cpus / f"cpu{cpu}" / "cpufreq"
        limit = {CPU: cpu, "sysops.cpu.frequency.limit.type": "scaling_max"}
        assert (
            values[key("sysops.cpu.frequency.limit", **limit)]
            == int((freq / "scaling_max_freq").read_text()) * 1e3
        )
        governor = (freq / "scaling_governor").read_text().strip()
        assert (
            values[
                key(
                    "sysops.cpu.frequency.governor",
                    **{CPU: cpu, "sysops.cpu.frequency.governor.name": governor},
                )
            ]
            == 1
        )
        count = int((cpus / f"cpu{cpu}" / "thermal_throttle" / "core_throttle_count").read_text())
        assert values[key("sysops.cpu.throttles", **{CPU: cpu})] == count
    # Package counts once per socket, not once per CPU.
    package = {dict(a)["sysops.cpu.socket"]: v for a, v in of(values, "sysops.cpu.package.throttles").items()}
    assert package == {0: 11, 1: 22}
    vulns = {
        dict(a)["sysops.cpu.vulnerability.name"]: dict(a)["sysops.cpu.vulnerability.state"]
        for a in of(values, "sysops.cpu.vulnerability")
    }
    assert vulns == {
        "meltdown": "not_affected",
        "l1tf": "not_affected",
        "spectre_v1": "mitigated",
        "spectre_v2": "mitigated",
        "mds": "vulnerable",
        "srbds": "unknown",
    }
    assert errors(pipe, "cpu_hw") == {}


# -- memory in detail -----------------------------------------------------------------------------


def test_memory_detail_meminfo_oom_numa_buddy_zones_ksm(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "memory_detail", MemDetailCollector)
    values = points(pipe.tick().data)
    meminfo = of(values, "sysops.memory.meminfo")
    for line in _text(server, "proc/meminfo").splitlines():
        name, value = line.split(":")
        words = value.split()
        field = frozenset({("sysops.memory.meminfo.field", name)})
        if name.startswith("HugePages_"):
            assert field not in meminfo  # page counts: the memory collector reports them
        else:
            assert meminfo[field] == int(words[0]) * 1024
    for name in (
        "Dirty",
        "Writeback",
        "Committed_AS",
        "CommitLimit",
        "HardwareCorrupted",
        "AnonHugePages",
        "Mlocked",
        "PageTables",
    ):
        assert frozenset({("sysops.memory.meminfo.field", name)}) in meminfo
    assert values[key("sysops.memory.oom_kills")] == 7
    for node in (0, 1):
        stat = dict(
            line.split()
            for line in (server.sysfs / f"devices/system/node/node{node}/numastat").read_text().splitlines()
        )
        for event in ("numa_hit", "numa_miss", "numa_foreign"):
            assert values[
                key("sysops.memory.numa.events", **{"sysops.numa.node": node, "sysops.numa.event": event})
            ] == int(stat[event])
    for line in _text(server, "proc/buddyinfo").splitlines():
        words = line.replace(",", "").split()
        node, zone, counts = int(words[1]), words[3], [int(w) for w in words[4:]]
        for order, n in enumerate(counts):
            attrs = {"sysops.numa.node": node, "sysops.memory.zone": zone, "sysops.memory.order": order}
            assert values[key("sysops.memory.buddy.free_blocks", **attrs)] == n
    # zoneinfo: Normal of node 1 has 1600000 free pages and a low watermark of 14000 pages;
    # the empty Movable zone (managed 0) is left out.
    normal1 = {"sysops.numa.node": 1, "sysops.memory.zone": "Normal"}
    assert values[key("sysops.memory.zone.free", **normal1)] == 1_600_000 * PAGE
    assert (
        values[key("sysops.memory.zone.watermark", **normal1, **{"sysops.memory.watermark": "low"})]
        == 14_000 * PAGE
    )
    assert (
        key("sysops.memory.zone.free", **{"sysops.numa.node": 0, "sysops.memory.zone": "Movable"})
        not in values
    )
    assert values[key("sysops.memory.ksm.pages", **{"sysops.memory.ksm.state": "sharing"})] == 900
    assert values[key("sysops.memory.ksm.full_scans")] == 42
    assert errors(pipe, "memory_detail") == {}


# -- software RAID --------------------------------------------------------------------------------


def test_mdraid_states_members_degraded_and_recovery(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "mdraid", MdRaidCollector)
    values = points(pipe.tick().data)
    text = _text(server, "proc/mdstat")
    # A second reading: each array's [n/m] and its (F)/(S) markers.
    blocks = dict(re.findall(r"^(md\d+) : .*\n\s+(\d+) blocks", text, re.M))
    counts = {
        name: (int(n), int(m)) for name, n, m in re.findall(r"^(md\d+) : .*\n.*\[(\d+)/(\d+)\]", text, re.M)
    }
    levels = dict(re.findall(r"^(md\d+) : active (?:\(auto-read-only\) )?(raid\d+)", text, re.M))
    assert set(counts) == {"md0", "md1", "md2"}
    for name, (n, m) in counts.items():
        attrs = {"sysops.raid.array": name, "sysops.raid.level": levels[name]}
        assert values[key("sysops.raid.disks.required", **attrs)] == n
        assert values[key("sysops.raid.disks", **attrs, **{"sysops.raid.disk.state": "active"})] == m
        assert values[key("sysops.raid.degraded", **attrs)] == (m < n)
        assert values[key("sysops.raid.size", **attrs)] == int(blocks[name]) * 1024
    md1 = {"sysops.raid.array": "md1", "sysops.raid.level": "raid5"}
    assert values[key("sysops.raid.disks", **md1, **{"sysops.raid.disk.state": "failed"})] == 1
    assert values[key("sysops.raid.disks", **md1, **{"sysops.raid.disk.state": "spare"})] == 1
    assert values[
        key("sysops.raid.sync.progress", **md1, **{"sysops.raid.sync.action": "recovery"})
    ] == pytest.approx(0.126)
    md2 = {"sysops.raid.array": "md2", "sysops.raid.level": "raid10"}
    assert values[key("sysops.raid.sync.progress", **md2, **{"sysops.raid.sync.action": "resync"})] == 0.0
    # md3 is inactive: no level, no member counts, but it is listed.
    md3 = {"sysops.raid.array": "md3", "sysops.raid.level": "unknown"}
    assert values[key("sysops.raid.active", **md3)] == 0
    assert key("sysops.raid.degraded", **md3) not in values
    assert errors(pipe, "mdraid") == {}


def test_every_family_reports_on_the_server_tree(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    for name, cls in (
        ("netstack", NetStackCollector),
        ("netclass", NetClassCollector),
        ("kernel", KernelCollector),
        ("cpu_hw", CpuHwCollector),
        ("memory_detail", MemDetailCollector),
        ("mdraid", MdRaidCollector),
        ("sensors", SensorsCollector),
    ):
        add(pipe, settings, name, cls)
    add(pipe, settings, "time", TimeCollector, source=RecordedTimex())
    data = pipe.tick().data
    scopes = {
        sm.scope.name.rsplit(".", 1)[-1]: len(sm.metrics)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
    }
    for name in ("netstack", "netclass", "kernel", "cpu_hw", "memory_detail", "mdraid", "sensors", "time"):
        assert scopes.get(name, 0) > 0, name
    assert sum(1 for _ in points(data)) > 300  # about node_exporter's default breadth on this tree


def test_no_mdstat_means_unavailable(server: Host, pipeline_for: Build) -> None:
    from otel_sysops.errors import CollectorUnavailableError

    (server.procfs / "mdstat").unlink()
    pipe, settings = pipeline_for(server)
    with pytest.raises(CollectorUnavailableError, match="mdstat"):
        add(pipe, settings, "mdraid", MdRaidCollector)


def test_interfaces_are_read_live(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "netclass", NetClassCollector)
    values = points(pipe.tick().data)
    mtus = {dict(a)[IFACE]: v for a, v in of(values, "sysops.network.interface.mtu").items()}
    for name in os.listdir("/sys/class/net"):
        assert mtus[name] == int(Path("/sys/class/net", name, "mtu").read_text())


def test_tree_copy_is_independent(server: Host) -> None:
    # The frozen tree must not be edited by a test: each test works on its own copy.
    assert server.root != FIXTURES / "server2s"
    shutil.rmtree(server.root / "proc" / "1")
    assert (FIXTURES / "server2s" / "proc" / "1" / "net" / "dev").exists()


# -- parsers never raise --------------------------------------------------------------------------


@given(st.text())
def test_parsers_never_raise(text: str) -> None:
    parse_softnet(text)
    parse_sockstat(text)
    parse_conntrack_stat(text)
    parse_snmp6(text)
    parse_arp(text)
    parse_mdstat(text)
    parse_buddyinfo(text)
    parse_zoneinfo(text)
    parse_cpu_table(text)
    parse_schedstat(text)
    parse_stat_totals(text)


@given(st.integers(min_value=0, max_value=4000))
def test_parsers_never_raise_on_truncated_files(cut: int) -> None:
    root = FIXTURES / "server2s" / "proc"
    for rel, parse in (
        ("mdstat", parse_mdstat),
        ("zoneinfo", parse_zoneinfo),
        ("buddyinfo", parse_buddyinfo),
        ("softirqs", parse_cpu_table),
        ("interrupts", parse_cpu_table),
        ("schedstat", parse_schedstat),
        ("1/net/softnet_stat", parse_softnet),
        ("1/net/stat/nf_conntrack", parse_conntrack_stat),
    ):
        text = (root / rel).read_text()
        parse(text[: cut % (len(text) + 1)])


def test_malformed_mdstat_lines_are_counted(server: Host, pipeline_for: Build) -> None:
    path = server.procfs / "mdstat"
    path.write_text(
        path.read_text().replace("unused devices", "md9 : \nmd8 : active raid1 bad[x]\nunused devices")
    )
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "mdraid", MdRaidCollector)
    values = points(pipe.tick().data)
    assert errors(pipe, "mdraid") == {"malformed_line": 2}
    assert len(of(values, "sysops.raid.active")) == 4


# -- hardware sensors -----------------------------------------------------------------------------


def test_sensors_fans_voltages_power_thermal_supplies_energy_dimms(server: Host, pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(server)
    add(pipe, settings, "sensors", SensorsCollector)
    values = points(pipe.tick().data)
    chip = server.sysfs / "class" / "hwmon" / "hwmon1"
    for path in sorted(chip.glob("*_input")):
        prefix = path.name.removesuffix("_input")
        match = re.match(r"[a-z]+", prefix)
        assert match is not None, prefix
        kind = match.group(0)
        label_file = chip / f"{prefix}_label"
        label = label_file.read_text().strip() if label_file.exists() else f"nct6798 {prefix}"
        metric, hw_type, scale = {
            "fan": ("hw.fan.speed", "fan", 1),
            "in": ("hw.voltage", "voltage", 1e-3),
            "power": ("hw.power", "power", 1e-6),
            "curr": ("sysops.hw.current", "current", 1e-3),
        }[kind]
        attrs = {"hw.id": f"hwmon1/{prefix}", "hw.name": label, "hw.type": hw_type, "hw.parent": "nct6798"}
        assert values[key(metric, **attrs)] == pytest.approx(int(path.read_text()) * scale)
    # SYS_FAN1 raises its alarm (stopped): degraded.
    fan2 = {"hw.id": "hwmon1/fan2", "hw.name": "SYS_FAN1", "hw.type": "fan"}
    assert values[key("hw.status", **fan2, **{"hw.state": "degraded"})] == 1
    assert values[key("hw.status", **fan2, **{"hw.state": "ok"})] == 0
    for zone in sorted((server.sysfs / "class" / "thermal").iterdir()):
        attrs = {"hw.id": zone.name, "hw.name": (zone / "type").read_text().strip(), "hw.type": "temperature"}
        assert values[key("hw.temperature", **attrs)] == int((zone / "temp").read_text()) / 1000
    psu2 = {"hw.id": "PSU2", "hw.name": "PSU2", "hw.type": "power_supply"}
    assert values[key("hw.status", **psu2, **{"hw.state": "failed"})] == 1
    assert values[key("hw.battery.charge", **{"hw.id": "BAT0", "hw.type": "battery"})] == 0.87
    for rapl in sorted((server.sysfs / "class" / "powercap").iterdir()):
        attrs = {"hw.id": rapl.name, "hw.name": (rapl / "name").read_text().strip(), "hw.type": "cpu"}
        assert values[key("hw.energy", **attrs)] == int((rapl / "energy_uj").read_text()) / 1e6
    dimm = {"hw.id": "mc1/dimm0", "hw.name": "CPU_SrcID#1_MC#0_Chan#0_DIMM#0", "hw.type": "memory"}
    assert values[key("hw.errors", **dimm, **{"error.type": "corrected"})] == 5
    assert len(of(values, "hw.errors")) == 8  # 4 DIMMs x corrected, uncorrected
    assert errors(pipe, "sensors") == {}
