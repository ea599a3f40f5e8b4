"""Built-in and custom patterns: what each catches, its key and severity; the prefilter hides nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_sysops.alerts import Severity
from otel_sysops.logs import XID_SEVERITY, Matcher, builtin_patterns, compile_custom
from otel_sysops.logs._parse import syslog_message
from otel_sysops.logs._patterns import nvml_bus_id

P = "sysops.log.pattern"
EXE = "process.executable.name"
DEV = "system.device"
IFACE = "network.interface.name"

# (line, pattern, severity, key attributes besides the pattern name)
CASES = [
    (
        "Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:1kB",
        "oom_kill",
        "CRITICAL",
        {EXE: "java"},
    ),
    (
        "Memory cgroup out of memory: Killed process 99 (python3) total-vm:1kB",
        "oom_kill",
        "CRITICAL",
        {EXE: "python3"},
    ),
    ("mce: [Hardware Error]: Machine check events logged", "hardware_error", "CRITICAL", {}),
    ("[Hardware Error]: CPU 3: Machine Check: 0 Bank 5: be00000000800400", "hardware_error", "CRITICAL", {}),
    (
        "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0",
        "edac",
        "WARNING",
        {"sysops.edac.memory_controller": "MC0", "error.type": "CE"},
    ),
    (
        "EDAC MC1: 2 UE memory scrubbing error on DIMM",
        "edac",
        "CRITICAL",
        {"sysops.edac.memory_controller": "MC1", "error.type": "UE"},
    ),
    (
        "NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.",
        "nvidia_xid",
        "EMERGENCY",
        {"sysops.gpu.xid": "79", "sysops.pci.bus_id": "00000000:3B:00.0"},
    ),
    (
        "NVRM: Xid (PCI:0000:3b:00): 48, pid=1, DBE (double bit error) ECC error",
        "nvidia_xid",
        "CRITICAL",
        {"sysops.gpu.xid": "48", "sysops.pci.bus_id": "00000000:3B:00.0"},
    ),
    (
        "NVRM: Xid (0000:01:00): 13, 0005 00000000 0000502d",
        "nvidia_xid",
        "WARNING",
        {"sysops.gpu.xid": "13", "sysops.pci.bus_id": "00000000:01:00.0"},
    ),
    (
        "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls",
        "fs_error",
        "CRITICAL",
        {DEV: "sda1"},
    ),
    ("XFS (dm-0): Corruption detected. Unmount and run xfs_repair", "fs_error", "CRITICAL", {DEV: "dm-0"}),
    (
        "BTRFS error (device nvme0n1p2): bdev /dev/nvme0n1p2 errs: wr 0, rd 1",
        "fs_error",
        "CRITICAL",
        {DEV: "nvme0n1p2"},
    ),
    ("EXT4-fs (sda1): Remounting filesystem read-only", "fs_readonly", "CRITICAL", {DEV: "sda1"}),
    ("BTRFS info (device sdb): forced readonly", "fs_readonly", "CRITICAL", {DEV: "sdb"}),
    (
        "blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ) flags 0x0",
        "io_error",
        "CRITICAL",
        {DEV: "sdb"},
    ),
    (
        "I/O error, dev nvme0n1, sector 42 op 0x1:(WRITE) flags 0x800",
        "io_error",
        "CRITICAL",
        {DEV: "nvme0n1"},
    ),
    ("Buffer I/O error on dev sda1, logical block 0, async page read", "io_error", "CRITICAL", {DEV: "sda1"}),
    ("e1000e 0000:00:1f.6 eth0: NIC Link is Down", "nic_link_down", "WARNING", {IFACE: "eth0"}),
    ("mlx5_core 0000:5e:00.0 ens1f0: Link down", "nic_link_down", "WARNING", {IFACE: "ens1f0"}),
    (
        "INFO: task kworker/0:1:123 blocked for more than 120 seconds.",
        "hung_task",
        "WARNING",
        {EXE: "kworker/0:1"},
    ),
    (
        "watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [java:4242]",
        "soft_lockup",
        "CRITICAL",
        {EXE: "java"},
    ),
    (
        "NMI watchdog: Watchdog detected hard LOCKUP on cpu 5",
        "hard_lockup",
        "CRITICAL",
        {"cpu.logical_number": "5"},
    ),
    ("rcu: INFO: rcu_sched self-detected stall on CPU", "rcu_stall", "CRITICAL", {}),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu_stall", "CRITICAL", {}),
    (
        "python3[1234]: segfault at 0 ip 00007f0000 sp 00007ffd error 4 in libc.so.6[7f00+1000]",
        "segfault",
        "WARNING",
        {EXE: "python3"},
    ),
    (
        "Web Content[77]: segfault at 8 ip 00007f sp 00007ffd error 6",
        "segfault",
        "WARNING",
        {EXE: "Web Content"},
    ),
    (
        "traps: java[4242] general protection fault ip:7f sp:7f error:0 in libjvm.so",
        "segfault",
        "WARNING",
        {EXE: "java"},
    ),
    ("nf_conntrack: nf_conntrack: table full, dropping packet", "conntrack_full", "CRITICAL", {}),
    ("nf_conntrack: table full, dropping packet", "conntrack_full", "CRITICAL", {}),
    (
        "unregister_netdevice: waiting for eth0 to become free. Usage count = 1",
        "unregister_netdevice",
        "WARNING",
        {IFACE: "eth0"},
    ),
    ("BUG: unable to handle page fault for address: ffffffffffffff", "kernel_oops", "CRITICAL", {}),
    ("Kernel panic - not syncing: Fatal exception in interrupt", "kernel_panic", "EMERGENCY", {}),
]

NOISE = [
    "systemd[1]: Started Session 3 of user root.",
    "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
    "XFS (dm-0): Mounting V5 Filesystem",
    "BTRFS info (device sda): using free space tree",
    "IPv6: ADDRCONF(NETDEV_CHANGE): veth1: link becomes ready",
    "oom_reaper: reaped process 4242 (java), now anon-rss:0kB",
    "NVRM: loading NVIDIA UNIX x86_64 Kernel Module  550.54.15",
]


@pytest.mark.parametrize(
    ("line", "name", "severity", "key"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_builtin_pattern_catches_its_line(line: str, name: str, severity: str, key: dict[str, str]) -> None:
    matches = Matcher(builtin_patterns()).match(line)
    assert [m.pattern.name for m in matches] == [name]
    assert matches[0].severity == Severity[severity]
    assert matches[0].attributes == {P: name, **key}


@pytest.mark.parametrize("line", NOISE)
def test_ordinary_lines_match_nothing(line: str) -> None:
    assert Matcher(builtin_patterns()).match(line) == []


def test_link_up_clears_the_link_down_key() -> None:
    matches = Matcher(builtin_patterns()).match(
        "igb 0000:03:00.0 eno1: igb: eno1 NIC Link is Up 1000 Mbps Full Duplex"
    )
    assert len(matches) == 1
    assert matches[0].severity is None
    assert matches[0].attributes == {P: "nic_link_down", IFACE: "eno1"}
    assert not matches[0].pattern.event


def test_syslog_header_never_leaks_into_a_capture() -> None:
    line = "Nov 22 03:17:42 web-01 kernel: [ 12.3] python3[1234]: segfault at 0 ip 00007f sp 0 error 4"
    (match,) = Matcher(builtin_patterns()).match(line, syslog_message)
    assert match.attributes[EXE] == "python3"


def test_oom_message_names_victim_and_pid() -> None:
    (match,) = Matcher(builtin_patterns()).match(CASES[0][0])
    assert match.message(CASES[0][0], "kmsg") == "OOM killer killed java (pid 4242)"


def test_kernel_bus_ids_take_nvml_form() -> None:
    assert nvml_bus_id("PCI:0000:3b:00") == "00000000:3B:00.0"
    assert nvml_bus_id("0000:01:00") == "00000000:01:00.0"
    assert nvml_bus_id("3b:00.1") == "00000000:3B:00.1"
    assert nvml_bus_id("not a bus") == "not a bus"


def test_xid_severity_by_code() -> None:
    for code in (48, 63, 64, 74, 92, 94):
        assert XID_SEVERITY[code] == Severity.CRITICAL
    for code in (79, 95):
        assert XID_SEVERITY[code] == Severity.EMERGENCY
    (match,) = Matcher(builtin_patterns()).match(
        "NVRM: Xid (PCI:0000:01:00): 31, pid=9, Ch 0000000b, MMU Fault"
    )
    assert match.severity == Severity.WARNING


# Text built from fragments of the patterns' own keywords and punctuation: the likeliest to
# confuse a prefilter that disagrees with the regexes.
_FRAGMENTS = [
    "Out of memory: ",
    "Killed process ",
    "4242 ",
    "(java) ",
    "Xid ",
    "NVRM: Xid (PCI:0000:01:00): ",
    "79, ",
    "EXT4-fs error (device sda1)",
    "I/O error, dev sdb, sector 9",
    "Link is Down",
    " eth0:",
    "soft lockup - CPU#1 stuck for 3s! [a:1]",
    "table full, dropping packet",
    "nf_conntrack: ",
    "Kernel panic - not syncing: x",
    "segfault at 0",
    "x[12]: ",
    "blocked for more than 5 seconds",
    "task a:1 ",
    "EDAC MC0: 1 CE x",
    "[Hardware Error]: ",
    " ",
    "\t",
    "é",
    "\x00",
]
_text = st.lists(st.sampled_from(_FRAGMENTS) | st.text(max_size=5), max_size=12).map("".join)


@given(_text)
def test_prefilter_hides_no_match(text: str) -> None:
    """Every line some pattern's regex matches is reported: the keyword scan lets nothing escape."""
    patterns = builtin_patterns()
    expected = {p.name for p in patterns if any(r.search(text) for r in p.regexes)}
    found = {m.pattern.name for m in Matcher(patterns).match(text) if m.severity is not None}
    assert found == expected


@given(
    st.text(max_size=40),
    st.text(alphabet=st.characters(blacklist_characters="()\n"), min_size=1, max_size=15),
    st.integers(1, 2**22),
    st.text(max_size=40),
)
def test_an_oom_kill_anywhere_in_a_line_is_caught(before: str, victim: str, pid: int, after: str) -> None:
    line = f"{before}Out of memory: Killed process {pid} ({victim}) total-vm:1kB{after}"
    oom = [
        m for m in Matcher(builtin_patterns(), max_line=10_000).match(line) if m.pattern.name == "oom_kill"
    ]
    assert oom
    assert oom[0].groups["pid"] == str(pid)


def test_custom_pattern_with_template_key_and_keywords() -> None:
    pattern = compile_custom(
        "sshd_fail",
        r"Failed password for (?P<user>\S+) from (?P<ip>\S+)",
        "warning",
        "{user} from {ip}",
        ["Failed password"],
        ["user"],
    )
    (match,) = Matcher([pattern]).match("sshd[9]: Failed password for root from 10.0.0.1 port 22")
    assert match.attributes == {P: "sshd_fail", "sysops.log.user": "root"}
    assert match.message("...", "file") == "root from 10.0.0.1"
    assert Matcher([pattern]).match("sshd[9]: Accepted password for root") == []


def test_custom_pattern_without_keywords_runs_on_every_line() -> None:
    pattern = compile_custom("anything", r"zz(?P<n>\d)", "info", "")
    (match,) = Matcher([*builtin_patterns(), pattern]).match("abc zz7")
    assert match.attributes == {P: "anything", "sysops.log.n": "7"}
    assert match.message("abc zz7", "kmsg") == "anything: abc zz7"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("bad", "(unclosed", "warning", ""), "pattern 'bad': invalid regex"),
        (("bad", "x", "loud", ""), "pattern 'bad': unknown severity 'loud'"),
        (("bad", "(?P<a>x)", "info", "{b}"), "pattern 'bad': message uses {b}, not a named group"),
        (("bad", "(?P<a>x)", "info", "{a"), "pattern 'bad': invalid message template"),
    ],
)
def test_custom_pattern_errors_name_the_pattern(args: tuple[str, str, str, str], error: str) -> None:
    with pytest.raises(ValueError, match="^" + error.replace("(", r"\(").replace("{", r"\{")):
        compile_custom(*args)
    with pytest.raises(ValueError, match="key group 'zz'"):
        compile_custom("bad", "(?P<a>x)", "info", "", key=["zz"])


def _engine(regex: object) -> str:
    return type(regex).__module__.split(".")[0]


def test_every_builtin_and_custom_regex_runs_on_the_linear_time_engine() -> None:
    """RE2 guarantees time linear in the line for any pattern: checked by engine, not by a stopwatch."""
    custom = compile_custom("mine", r"(?P<a>\w+)+x", "info", "")
    patterns = [*builtin_patterns(), custom]
    regexes = [r for p in patterns for r in p.regexes] + [p.clear for p in patterns if p.clear is not None]
    assert {_engine(r) for r in regexes} == {"re2"}
    assert _engine(Matcher(patterns)._prefilter) == "re2"


def test_a_line_is_cut_to_max_line_before_matching() -> None:
    matcher = Matcher(builtin_patterns(), max_line=100)
    oom = "Out of memory: Killed process 42 (java)"
    assert matcher.match(oom + " " + "x" * 10_000)  # the match is inside the kept part
    assert matcher.match("x" * 100 + oom) == []  # beyond the cut: never scanned
    assert matcher.match("x" * 61 + oom) != []


def test_adversarial_long_lines_still_match_correctly() -> None:
    """The lines that made the backtracking engine quadratic give the right answer (and do finish)."""
    matcher = Matcher(builtin_patterns(), max_line=65536)
    nic = "a" * 10_000 + " eth0: NIC Link is Down"
    (down,) = matcher.match(nic)
    assert down.attributes[IFACE] == "eth0"
    (up,) = matcher.match("b" * 10_000 + " eth0: NIC Link is Up")
    assert up.severity is None
    assert matcher.match("(" * 10_000 + "): remounting filesystem read-only")
    assert matcher.match(" ".join(["java"] * 3000) + "[1]: segfault at 0")


def test_a_lone_surrogate_from_journal_json_is_matched_not_raised() -> None:
    # json.loads('"\\ud800"') yields a str with no UTF-8 form; RE2 needs one.
    (match,) = Matcher(builtin_patterns()).match("Out of memory: Killed process 7 (a\ud800b) x")
    assert match.attributes[EXE] == "a?b"
