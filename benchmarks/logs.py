"""Log analyzer throughput: 100,000 syslog lines (a realistic mix, 1 % matching), side by side.

Rows:
- file source: the lines written to a real file, read by `FileFollower.poll` and fed to the analyzer
  (what the agent does per poll, I/O included).
- analyzer: `LogAnalyzer.feed` as the file source calls it (keyword prefilter, header stripping and
  sanitising on hits, findings to a no-op sink, counters).
- matcher: `Matcher.match` alone (one combined keyword regex, then the regexes of the patterns whose
  keyword the line holds).
- substring: the prefilter as `any(keyword in line)` over all keywords instead of one regex.
- naive: every built-in regex searched on every line (what the prefilter saves).
Prints lines/s and CPU µs/line per row (best of 5 by CPU time: the machine is shared) and the CPU
ratio to the analyzer. Run: python benchmarks/logs.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from otel_sysops.alerts import Finding
from otel_sysops.logs import FileFollower, LogAnalyzer, Matcher, builtin_patterns
from otel_sysops.logs._parse import syslog_message

N = 100_000
MATCH_SHARE = 0.01

NOISE = [
    "systemd[1]: Started Session {n} of user root.",
    "sshd[{n}]: Accepted publickey for deploy from 10.0.{a}.{b} port {n} ssh2: ED25519 SHA256:abc",
    "CRON[{n}]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "kernel: [{n}.123456] IPv6: ADDRCONF(NETDEV_CHANGE): veth{n}: link becomes ready",
    "kernel: [{n}.223344] docker0: port 3(veth{n}) entered forwarding state",
    'containerd[{n}]: time="2026-11-22T03:17:42Z" level=info msg="shim disconnected" id={n}',
    'dockerd[{n}]: time="2026-11-22T03:17:42Z" level=info msg="ignoring event" module=libcontainerd',
    "systemd-logind[{n}]: New session {n} of user deploy.",
    'rsyslogd: [origin software="rsyslogd" swVersion="8.2302.0"] rsyslogd was HUPed',
    'kubelet[{n}]: I1122 03:17:42.123456 {n} kubelet.go:2000] "SyncLoop (PLEG)" pod="default/web-{n}"',
    "postfix/smtpd[{n}]: connect from unknown[10.1.{a}.{b}]",
    'nginx[{n}]: 10.0.{a}.{b} - - "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"',
    "kernel: [{n}.5] EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
    "kernel: [{n}.6] XFS (dm-{a}): Mounting V5 Filesystem",
]
MATCHING = [
    "kernel: [{n}.1] Out of memory: Killed process {n} (java) total-vm:8123456kB, anon-rss:4000000kB",
    "kernel: [{n}.1] Memory cgroup out of memory: Killed process {n} (python3) total-vm:1kB",
    "kernel: [{n}.1] NVRM: Xid (PCI:0000:3b:00): 79, pid={n}, GPU has fallen off the bus.",
    "kernel: [{n}.1] blk_update_request: I/O error, dev sdb, sector {n} op 0x0:(READ) flags 0x0",
    "kernel: [{n}.1] EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls",
    "kernel: [{n}.1] e1000e 0000:00:1f.6 eth0: NIC Link is Down",
    "kernel: [{n}.1] INFO: task kworker/0:1:{n} blocked for more than 120 seconds.",
    "kernel: [{n}.1] watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [java:{n}]",
    "kernel: [{n}.1] python3[{n}]: segfault at 0 ip 00007f0000 sp 00007ffd error 4 in libc.so.6",
    "kernel: [{n}.1] nf_conntrack: nf_conntrack: table full, dropping packet",
]


def make_lines(seed: int = 7) -> list[str]:
    """Return N syslog lines with headers, MATCH_SHARE of them matching a built-in pattern."""
    rng = random.Random(seed)
    out = []
    for i in range(N):
        pool = MATCHING if rng.random() < MATCH_SHARE else NOISE
        body = rng.choice(pool).format(n=rng.randrange(1, 99999), a=rng.randrange(256), b=rng.randrange(256))
        out.append(f"Nov 22 03:{i // 6000 % 60:02d}:{i // 100 % 60:02d} web-01 {body}")
    return out


class NullSink:
    def __init__(self) -> None:
        self.n = 0

    def submit(self, finding: Finding) -> None:
        self.n += 1


def measure(fn: object, lines: list[str]) -> tuple[float, float, int]:
    """Return (lines/s, CPU µs per line, matches) of one run over `lines`."""
    assert callable(fn)
    wall, cpu = time.perf_counter(), time.process_time()
    matched = fn(lines)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(lines) / wall, cpu / len(lines) * 1e6, int(matched)


def main() -> None:
    lines = make_lines()
    patterns = builtin_patterns()
    sink = NullSink()
    analyzer = LogAnalyzer(Matcher(patterns), sink, resubmit_after=0.0)

    def run_analyzer(batch: list[str]) -> int:
        total = 0
        for i in range(0, len(batch), 1000):  # the file source feeds one poll's lines at a time
            total += analyzer.feed("file", batch[i : i + 1000], path="/var/log/syslog", syslog=True)
        return total

    regexes = [r for p in patterns for r in p.regexes]

    def run_naive(batch: list[str]) -> int:
        n = 0
        for line in batch:
            body = syslog_message(line)
            if any(r.search(body) for r in regexes):
                n += 1
        return n

    keywords = tuple({k for p in patterns for k in p.keywords})

    def run_substring(batch: list[str]) -> int:
        n = 0
        for line in batch:
            if any(k in line for k in keywords):
                body = syslog_message(line)
                if any(r.search(body) for r in regexes):
                    n += 1
        return n

    matcher = Matcher(patterns)

    def run_matcher(batch: list[str]) -> int:
        match = matcher.match
        return sum(1 for line in batch if match(line, syslog_message))

    tmp = Path(tempfile.mkdtemp())
    data = "".join(line + "\n" for line in lines).encode()

    def run_file(batch: list[str]) -> int:
        path = tmp / "syslog"
        path.write_bytes(b"")
        follower = FileFollower(path)
        # Its own analyzer: the shared one would take these lines for cross-source duplicates.
        analyzer = LogAnalyzer(Matcher(patterns), NullSink(), resubmit_after=0.0)
        total = 0
        with path.open("ab") as fh:
            for i in range(0, len(data), 256 * 1024):
                fh.write(data[i : i + 256 * 1024])
                fh.flush()
                total += analyzer.feed("file", follower.poll(), path=str(path), syslog=True)
        total += analyzer.feed("file", follower.poll(), path=str(path), syslog=True)
        follower.close()
        return total

    rows = []
    for name, fn in (
        ("file source", run_file),
        ("analyzer", run_analyzer),
        ("matcher", run_matcher),
        ("substring", run_substring),
        ("naive", run_naive),
    ):
        best = min((measure(fn, lines) for _ in range(5)), key=lambda r: r[1])
        rows.append((name, *best))
    base = rows[1][2]
    print(f"{N:,} lines, {MATCH_SHARE:.0%} matching, {len(patterns)} built-in patterns (best of 5 by CPU)")
    print(f"{'path':<12} {'lines/s':>10} {'CPU µs/line':>12} {'matches':>8} {'CPU vs analyzer':>16}")
    for name, rate, cpu, matched in rows:
        print(f"{name:<12} {rate:>10,.0f} {cpu:>12.2f} {matched:>8} {cpu / base:>15.2f}x")


if __name__ == "__main__":
    main()
