"""Regex time per long adversarial line: the stdlib's backtracking engine next to RE2, same patterns.

The lines are the ones that made the built-in patterns quadratic (a long run of characters a
pattern's first part accepts, then no match or a match at the very end). Each row times the
built-in regexes searched one after the other on the whole line, compiled by RE2 (as the agent
does) and by the stdlib `re` (as before), best of 3 by CPU time
(the machine may be shared). Run: python benchmarks/logs_regex.py
"""

from __future__ import annotations

import re
import time

from otel_sysops.logs import builtin_patterns

LINES = {
    "nic_link_down": "{fill} eth0: NIC Link is Down",
    "nic_link_up (clear)": "{fill} eth0: NIC Link is Up",
    "fs_readonly": "{paren} remounting filesystem read-only",
    "segfault": "{words}[1]: segfault at 0 ip",
}


def _lines(size: int) -> dict[str, str]:
    fill = "a" * size
    paren = "(" * size
    words = " ".join(["java"] * (size // 5))
    return {k: v.format(fill=fill, paren=paren, words=words) for k, v in LINES.items()}


def _cpu(func: object, line: str, repeat: int = 3) -> float:
    assert callable(func)
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        func(line)
        best = min(best, time.process_time() - t)
    return best


def main() -> None:
    patterns = builtin_patterns()
    linear = [r for p in patterns for r in p.regexes] + [p.clear for p in patterns if p.clear is not None]
    sources = [r.pattern for p in patterns for r in p.regexes] + [
        p.clear.pattern for p in patterns if p.clear is not None
    ]
    stdlib = [re.compile(s) for s in sources]

    def re2_all(line: str) -> None:
        for regex in linear:
            regex.search(line)

    def backtracking(line: str) -> None:
        for regex in stdlib:
            regex.search(line)

    print(f"{'line':<22}{'size':>8}{'re (ms)':>12}{'RE2 (ms)':>12}{'ratio':>9}")
    for size in (2_000, 10_000):
        for name, line in _lines(size).items():
            slow = _cpu(backtracking, line, repeat=1 if size > 5000 else 3)
            fast = _cpu(re2_all, line)
            ratio = slow / fast if fast > 0 else float("inf")
            print(f"{name:<22}{size:>8}{slow * 1e3:>12.1f}{fast * 1e3:>12.2f}{ratio:>9.0f}")


if __name__ == "__main__":
    main()
