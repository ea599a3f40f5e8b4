"""Parse /proc/[pid]/stat and /proc/[pid]/status (proc(5)), and /etc/passwd for owner names."""

from __future__ import annotations

from ._numbers import ascii_int

# (comm, state letter, utime + stime in clock ticks, threads, start time in ticks, rss pages)
PidStat = tuple[str, str, int, int, int, int]

# proc(5): "(2) comm" is in parentheses and may itself hold spaces and ")"; fields after the
# last ")" start with (3) state. Indexes below count from (3).
_STATE, _UTIME, _STIME, _THREADS, _START, _RSS = 0, 11, 12, 17, 19, 21


def parse_pid_stat(text: str) -> PidStat | None:
    """Return the fields of one /proc/[pid]/stat line we use, or None when it does not parse."""
    open_ = text.find("(")
    close = text.rfind(")")
    if open_ < 1 or close < open_:
        return None
    # Split only as far as rss: the 30-odd fields after it are never used.
    fields = text[close + 1 :].split(None, _RSS + 1)
    if len(fields) <= _RSS:
        return None
    try:
        ticks = int(fields[_UTIME]) + int(fields[_STIME])
        threads, start, rss = int(fields[_THREADS]), int(fields[_START]), int(fields[_RSS])
    except ValueError:
        return None
    state = fields[_STATE]
    if len(state) != 1 or ticks < 0 or threads < 0 or start < 0 or rss < 0:
        return None
    return text[open_ + 1 : close], state, ticks, threads, start, rss


def parse_status_uid(text: str) -> int | None:
    """Return the real UID of a /proc/[pid]/status file ("Uid:  real effective saved fs")."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            parts = line[4:].split()
            return ascii_int(parts[0]) if parts else None
    return None


def parse_passwd(text: str) -> tuple[dict[int, str], int]:
    """Return uid -> user name from passwd(5) text, and the number of lines that did not parse."""
    users: dict[int, str] = {}
    malformed = 0
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        uid = ascii_int(parts[2]) if len(parts) >= 4 and parts[0] else None
        if uid is None:
            malformed += 1
            continue
        users.setdefault(uid, parts[0])
    return users, malformed
