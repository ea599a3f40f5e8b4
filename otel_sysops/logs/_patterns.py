"""The patterns the analyzer looks for: built-in kernel failures and custom ones from the settings."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER
from opentelemetry.semconv._incubating.attributes.network_attributes import NETWORK_INTERFACE_NAME
from opentelemetry.semconv._incubating.attributes.process_attributes import PROCESS_EXECUTABLE_NAME
from opentelemetry.semconv._incubating.attributes.system_attributes import SYSTEM_DEVICE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from otel_sysops.findings import Severity

from ._regex import Regex, RegexError, compile_regex, escape

ATTR_PATTERN = "sysops.log.pattern"
ATTR_XID = "sysops.gpu.xid"
# The GPU collector's attributes (instrumentation/_gpu_model.py), so a Xid alert names the same GPU.
ATTR_PCI_BUS = "sysops.pci.bus_id"
ATTR_MEMORY_CONTROLLER = "sysops.edac.memory_controller"

# Fields every template may use besides the pattern's named groups.
IMPLICIT_FIELDS = frozenset({"line", "source", "pattern"})

_NO_KEY: Mapping[str, str] = MappingProxyType({})
_NO_NORMALIZE: Mapping[str, Callable[[str], str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Pattern:
    """One thing to look for: regexes (the first that matches wins), severity, message, dedup key."""

    name: str
    regexes: tuple[Regex, ...]
    severity: Severity
    # str.format template over the named groups and IMPLICIT_FIELDS.
    message: str
    # Named group -> alert attribute: the captured key the alert is deduplicated by.
    key: Mapping[str, str] = field(default_factory=lambda: _NO_KEY)
    # Literal substrings, one of which every matching line contains (the cheap prefilter);
    # empty means "run the regexes on every line".
    keywords: tuple[str, ...] = ()
    # Severity decided by what was captured (NVIDIA Xid code, EDAC CE/UE); None keeps `severity`.
    severity_of: Callable[[Mapping[str, str]], Severity] | None = None
    # A line that ends the condition for the same key (NIC "Link is Up"): sends a cleared finding.
    clear: Regex | None = None
    clear_keywords: tuple[str, ...] = ()
    # Named group -> function giving the attribute value its canonical form.
    normalize: Mapping[str, Callable[[str], str]] = field(default_factory=lambda: _NO_NORMALIZE)

    @property
    def event(self) -> bool:
        """Return whether matches are one-off events (no line ever clears them)."""
        return self.clear is None


@dataclass(frozen=True, slots=True)
class Match:
    """A line matched (or cleared) a pattern."""

    pattern: Pattern
    groups: Mapping[str, str]
    severity: Severity | None

    @property
    def attributes(self) -> dict[str, str]:
        """Return the alert attributes: the pattern name and the captured key."""
        attrs = {ATTR_PATTERN: self.pattern.name}
        for group, attr in self.pattern.key.items():
            value = self.groups.get(group)
            if value:
                fix = self.pattern.normalize.get(group)
                attrs[attr] = fix(value) if fix is not None else value
        return attrs

    def message(self, line: str, source: str) -> str:
        """Render the pattern's template; a group that did not take part renders as '?'."""
        values = {k: ("?" if v is None else v) for k, v in self.groups.items()}
        values.update(line=line, source=source, pattern=self.pattern.name)
        try:
            return self.pattern.message.format_map(values)
        except (KeyError, IndexError, ValueError):
            return f"{self.pattern.name}: {line}"


def template_fields(template: str) -> set[str]:
    """Return the field names a str.format template uses; raise ValueError when it is malformed."""
    names: set[str] = set()
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ValueError(f"template field {{{name}}} must be a group name")
        names.add(name)
        if spec:
            names |= template_fields(spec)
    return names


# -- NVIDIA Xid ----------------------------------------------------------------------------------
# Severity by Xid code, from NVIDIA's public Xid catalog (docs.nvidia.com/deploy/xid-errors): the
# GPU is lost or memory is corrupt (reset or drain the node) -> emergency; a hardware fault that
# needs a GPU reset or a restarted application -> critical; the rest (mostly application faults:
# 13 graphics exception, 31 page fault, 43 stopped processing) -> warning; 45 (preemptive cleanup
# after an earlier error) -> info.
XID_SEVERITY: Mapping[int, Severity] = MappingProxyType(
    {
        79: Severity.EMERGENCY,  # GPU has fallen off the bus
        95: Severity.EMERGENCY,  # uncontained ECC error
        48: Severity.CRITICAL,  # double-bit ECC error
        61: Severity.CRITICAL,  # internal micro-controller breakpoint/warning
        62: Severity.CRITICAL,  # internal micro-controller halt
        63: Severity.CRITICAL,  # ECC page retirement / row remapping event
        64: Severity.CRITICAL,  # ECC page retirement / row remapper failure
        74: Severity.CRITICAL,  # NVLink error
        92: Severity.CRITICAL,  # high single-bit ECC error rate
        94: Severity.CRITICAL,  # contained ECC error
        119: Severity.CRITICAL,  # GSP RPC timeout
        120: Severity.CRITICAL,  # GSP error
        140: Severity.CRITICAL,  # unrecovered ECC error
        154: Severity.CRITICAL,  # GPU recovery action changed (reset or reboot needed)
        45: Severity.INFO,  # preemptive cleanup
    }
)


_KERNEL_BUS_ID = re.compile(
    r"(?:PCI:)?(?:([0-9a-fA-F]{1,8}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.([0-7]))?"
)


def nvml_bus_id(text: str) -> str:
    """Return the driver's "PCI:0000:3b:00" in NVML's form "00000000:3B:00.0" (unchanged if unknown)."""
    m = _KERNEL_BUS_ID.fullmatch(text.strip())
    if m is None:
        return text
    domain, bus, device, function = m.groups()
    return f"{int(domain or '0', 16):08X}:{int(bus, 16):02X}:{int(device, 16):02X}.{function or '0'}"


def _xid_severity(groups: Mapping[str, str]) -> Severity:
    code = groups.get("xid")
    return XID_SEVERITY.get(int(code), Severity.WARNING) if code and code.isdigit() else Severity.WARNING


def _edac_severity(groups: Mapping[str, str]) -> Severity:
    # CE: corrected (the hardware fixed it; a rising rate predicts failure); UE: uncorrected.
    return Severity.CRITICAL if groups.get("kind") == "UE" else Severity.WARNING


def _re(*sources: str) -> tuple[Regex, ...]:
    return tuple(compile_regex(s) for s in sources)


def builtin_patterns() -> list[Pattern]:
    """Return the built-in patterns (kernel failures, as node-problem-detector and the design table list)."""
    proc = {"victim": PROCESS_EXECUTABLE_NAME}
    device = {"device": SYSTEM_DEVICE}
    return [
        Pattern(
            "oom_kill",
            # mm/oom_kill.c: "Out of memory: Killed process 4242 (java) total-vm:..." and, for a
            # cgroup limit, "Memory cgroup out of memory: Killed process ...".
            _re(
                r"(?:Memory cgroup out of memory|Out of memory): "
                r"Killed process (?P<pid>\d+) \((?P<victim>[^)]*)\)"
            ),
            Severity.CRITICAL,
            "OOM killer killed {victim} (pid {pid})",
            proc,
            ("Killed process",),
        ),
        Pattern(
            "hardware_error",
            _re(
                r"\[Hardware Error\]:?\s*(?P<detail>.*)",
                r"(?P<detail>Machine check events logged|Machine Check Exception.*)",
            ),
            Severity.CRITICAL,
            "hardware error (machine check): {detail}",
            keywords=("Hardware Error", "Machine check", "Machine Check"),
        ),
        Pattern(
            "edac",
            # drivers/edac: "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 ..."
            _re(r"EDAC (?P<mc>MC\d+): (?P<count>\d+) (?P<kind>CE|UE) (?P<detail>.*)"),
            Severity.WARNING,
            "EDAC {mc}: {count} {kind} memory error(s): {detail}",
            {"mc": ATTR_MEMORY_CONTROLLER, "kind": ERROR_TYPE},
            ("EDAC",),
            _edac_severity,
        ),
        Pattern(
            "nvidia_xid",
            # "NVRM: Xid (PCI:0000:3b:00): 79, pid=..., GPU has fallen off the bus."
            _re(r"NVRM: Xid \((?P<device>[^)]*)\): (?P<xid>\d+),?\s*(?P<detail>.*)"),
            Severity.WARNING,
            "NVIDIA Xid {xid} on {device}: {detail}",
            {"xid": ATTR_XID, "device": ATTR_PCI_BUS},
            ("Xid",),
            _xid_severity,
            normalize={"device": nvml_bus_id},
        ),
        Pattern(
            "fs_error",
            _re(
                r"EXT4-fs error \(device (?P<device>[^)]+)\)",
                r"XFS \((?P<device>[^)]+)\): "
                r"(?:Corruption|Metadata corruption|metadata I/O error|.*Shutting down filesystem)",
                r"BTRFS (?:error|critical) \(device (?P<device>[^)]+)\)",
            ),
            Severity.CRITICAL,
            "filesystem error on {device}: {line}",
            device,
            (
                "EXT4-fs error",
                "BTRFS error",
                "BTRFS critical",
                "Corruption",
                "corruption",
                "metadata I/O error",
                "Shutting down filesystem",
            ),
        ),
        Pattern(
            "fs_readonly",
            _re(
                r"\((?:device )?(?P<device>[^)]+)\): [Rr]emounting filesystem read-only",
                r"BTRFS\b.*\(device (?P<device>[^)]+)\).*forced readonly",
            ),
            Severity.CRITICAL,
            "filesystem on {device} remounted read-only",
            device,
            ("read-only", "readonly"),
        ),
        Pattern(
            "io_error",
            # block/blk-core.c: "blk_update_request: I/O error, dev sda, sector 12345 op 0x0:(READ)",
            # newer "I/O error, dev sda, sector ...", "Buffer I/O error on dev sda1, logical block ...".
            _re(
                r"(?:I/O|critical medium|medium) error,? (?:on )?dev (?P<device>[\w.:-]+)"
                r"(?:, sector (?P<sector>\d+))?"
            ),
            Severity.CRITICAL,
            "I/O error on {device} (sector {sector})",
            device,
            ("I/O error", "medium error"),
        ),
        Pattern(
            "nic_link_down",
            # e1000e/igb/ixgbe/bnxt: "eth0: NIC Link is Down"; mlx5: "ens1f0: Link down".
            _re(r"(?P<iface>[\w.@-]+):? (?:NIC )?Link (?:is )?[Dd]own"),
            Severity.WARNING,
            "network link {iface} is down",
            {"iface": NETWORK_INTERFACE_NAME},
            ("Link is Down", "Link down"),
            clear=compile_regex(r"(?P<iface>[\w.@-]+):? (?:NIC )?Link (?:is )?[Uu]p"),
            clear_keywords=("Link is Up", "Link up"),
        ),
        Pattern(
            "hung_task",
            # kernel/hung_task.c: "INFO: task kworker/0:1:123 blocked for more than 120 seconds."
            _re(r"task (?P<victim>.+?):(?P<pid>\d+) blocked for more than (?P<seconds>\d+) seconds"),
            Severity.WARNING,
            "task {victim} (pid {pid}) blocked for more than {seconds} s",
            proc,
            ("blocked for more than",),
        ),
        Pattern(
            "soft_lockup",
            # kernel/watchdog.c: "watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [java:4242]"
            _re(
                r"soft lockup - CPU#(?P<cpu>\d+) stuck for (?P<seconds>\d+)s! \[(?P<victim>.+):(?P<pid>\d+)\]"
            ),
            Severity.CRITICAL,
            "soft lockup: CPU {cpu} stuck for {seconds} s in {victim} (pid {pid})",
            proc,
            ("soft lockup",),
        ),
        Pattern(
            "hard_lockup",
            _re(r"(?:Watchdog detected hard LOCKUP|hard LOCKUP) on cpu (?P<cpu>\d+)"),
            Severity.CRITICAL,
            "hard lockup on CPU {cpu}",
            {"cpu": CPU_LOGICAL_NUMBER},
            ("hard LOCKUP",),
        ),
        Pattern(
            "rcu_stall",
            # kernel/rcu/tree_stall.h: "rcu: INFO: rcu_sched self-detected stall on CPU",
            # "rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"
            _re(r"(?P<flavor>rcu_\w+)? ?(?:self-)?detected stalls? on (?:CPU|tasks)"),
            Severity.CRITICAL,
            "RCU stall: {line}",
            keywords=("detected stall",),
        ),
        Pattern(
            "segfault",
            # arch/x86/mm/fault.c: "java[4242]: segfault at 0 ip ... error 4 in libjvm.so[...]";
            # traps.c: "traps: java[4242] general protection fault ip:..."
            _re(
                r"(?:^|\s)(?P<victim>[^\s\[][^\[]*?)\[(?P<pid>\d+)\]: segfault at (?P<address>[0-9a-fA-F]+)",
                r"traps: (?P<victim>.+?)\[(?P<pid>\d+)\] (?:general protection fault|trap )",
            ),
            Severity.WARNING,
            "{victim} (pid {pid}) crashed: {line}",
            proc,
            ("segfault at", "general protection fault", "traps: "),
        ),
        Pattern(
            "conntrack_full",
            _re(r"nf_conntrack: (?:nf_conntrack: )?table full, dropping packet"),
            Severity.CRITICAL,
            "connection tracking table full, dropping packets",
            keywords=("table full",),
        ),
        Pattern(
            "unregister_netdevice",
            _re(r"unregister_netdevice: waiting for (?P<iface>\S+) to become free"),
            Severity.WARNING,
            "network device {iface} stuck in unregister (leaked references)",
            {"iface": NETWORK_INTERFACE_NAME},
            ("unregister_netdevice",),
        ),
        Pattern(
            "kernel_oops",
            _re(
                r"(?P<detail>BUG: unable to handle .*|kernel BUG at .*|Oops: .*|general protection fault: .*)"
            ),
            Severity.CRITICAL,
            "kernel oops: {detail}",
            keywords=("BUG: unable to handle", "kernel BUG at", "Oops: ", "general protection fault: "),
        ),
        Pattern(
            "kernel_panic",
            _re(r"Kernel panic - not syncing:?\s*(?P<reason>.*)"),
            Severity.EMERGENCY,
            "kernel panic: {reason}",
            keywords=("Kernel panic",),
        ),
    ]


class Matcher:
    """Match lines against patterns: one combined keyword scan first, the regexes only on a hit."""

    def __init__(self, patterns: Sequence[Pattern], max_line: int = 4096) -> None:
        self.patterns = list(patterns)
        self._max_line = max_line
        keywords = sorted(
            {k for p in self.patterns for k in (*p.keywords, *p.clear_keywords)}, key=lambda k: (-len(k), k)
        )
        self._always = [p for p in self.patterns if not p.keywords]
        self._keyed = [p for p in self.patterns if p.keywords]
        self._cleared = [p for p in self.patterns if p.clear is not None]
        # One alternation of literals is one C-level scan of the line, instead of one per keyword.
        self._prefilter = compile_regex("|".join(escape(k) for k in keywords)) if keywords else None

    def match(self, line: str, body: Callable[[str], str] | None = None) -> list[Match]:
        """Return every pattern `line` matches (firing) or clears; usually an empty list.

        `body` prepares a line that passed the keyword scan for the regexes: the analyzer strips a
        syslog header (so it never leaks into a capture) and sanitises it.
        """
        try:
            return self._match(line, body)
        except UnicodeEncodeError:
            # A lone surrogate (a journal field "\ud800" in JSON) has no UTF-8 form for RE2.
            return self._match(line.encode("utf-8", "replace").decode("utf-8"), body)

    def _match(self, line: str, body: Callable[[str], str] | None) -> list[Match]:
        # Cut first: every step below is linear in what is left, and a line is never longer than this.
        line = line[: self._max_line]
        hit = self._prefilter is not None and self._prefilter.search(line) is not None
        if not hit and not self._always:
            return []
        if body is not None:
            line = body(line)[: self._max_line]
        out: list[Match] = []
        if hit:
            # Only the patterns one of whose keywords the line holds: a handful of C-level
            # substring tests instead of every pattern's regex.
            for pattern in self._keyed:
                if any(k in line for k in pattern.keywords):
                    self._match_one(pattern, line, out)
        for pattern in self._always:
            self._match_one(pattern, line, out)
        if hit:
            for pattern in self._cleared:
                assert pattern.clear is not None
                if not pattern.clear_keywords or any(k in line for k in pattern.clear_keywords):
                    m = pattern.clear.search(line)
                    if m is not None:
                        out.append(Match(pattern, m.groupdict(), None))
        return out

    @staticmethod
    def _match_one(pattern: Pattern, line: str, out: list[Match]) -> bool:
        for regex in pattern.regexes:
            m = regex.search(line)
            if m is not None:
                groups = m.groupdict()
                severity = pattern.severity if pattern.severity_of is None else pattern.severity_of(groups)
                out.append(Match(pattern, groups, severity))
                return True
        return False


def compile_custom(
    name: str,
    regex: str,
    severity: str,
    message: str,
    keywords: Iterable[str] = (),
    key: Iterable[str] | None = None,
) -> Pattern:
    """Build a pattern from the settings; raise ValueError naming what is wrong."""
    try:
        compiled = compile_regex(regex)
    except RegexError as exc:
        raise ValueError(f"pattern {name!r}: invalid regex: {exc}") from None
    groups = set(compiled.groupindex)
    try:
        sev = Severity.parse(severity)
    except ValueError as exc:
        raise ValueError(f"pattern {name!r}: {exc}") from None
    template = message or "{pattern}: {line}"
    try:
        used = template_fields(template)
    except ValueError as exc:
        raise ValueError(f"pattern {name!r}: invalid message template: {exc}") from None
    unknown = used - groups - IMPLICIT_FIELDS
    if unknown:
        accepted = ", ".join(sorted(groups | IMPLICIT_FIELDS))
        raise ValueError(
            f"pattern {name!r}: message uses {{{sorted(unknown)[0]}}}, not a named group; "
            f"accepted: {accepted}"
        )
    key_groups = sorted(groups) if key is None else list(key)
    missing = [g for g in key_groups if g not in groups]
    if missing:
        raise ValueError(f"pattern {name!r}: key group {missing[0]!r} is not a named group of the regex")
    return Pattern(
        name,
        (compiled,),
        sev,
        template,
        MappingProxyType({g: f"sysops.log.{g}" for g in key_groups}),
        tuple(k for k in keywords if k),
    )
