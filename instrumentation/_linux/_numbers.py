"""Numbers in kernel text: ASCII digits only, bounded length (a u64 has at most 20 digits).

`str.isdigit` and `str.isdecimal` accept "²" or "٣", and `int()` refuses more than 4,300 digits
with a ValueError: text from /proc, /sys or a cgroup file is checked here instead, so a malformed
field is a None (skipped and counted by the caller), never an exception.
"""

from __future__ import annotations

# 2**64 - 1 has 20 digits; a longer field is no kernel counter.
MAX_DIGITS = 20


def ascii_int(word: str, max_digits: int = MAX_DIGITS) -> int | None:
    """Return the value of a non-negative decimal of ASCII digits; None for anything else."""
    if not word or len(word) > max_digits or not word.isascii() or not word.isdigit():
        return None
    return int(word)
