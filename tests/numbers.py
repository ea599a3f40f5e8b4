"""Text that looks like a number to a careless parser: for the fuzz tests of every text parser."""

from __future__ import annotations

from hypothesis import strategies as st

# Pass `str.isdigit` (or `isdecimal`) but are no ASCII number, or make `int()` raise (> 4,300
# digits), or overflow a u64, or are floats a counter never is.
TRICKY_NUMBERS = (
    "²",
    "³¹",
    "٣",
    "১২",
    "𝟘",
    "1²",
    "9" * 5000,
    "1" * 21,
    "18446744073709551616",
    "-1",
    "+1",
    "1_000",
    " 1",
    "1e400",
    "nan",
    "inf",
    "0x1f",
)


def numbers() -> st.SearchStrategy[str]:
    """An ordinary number or a tricky one."""
    return st.integers(0, 2**64).map(str) | st.sampled_from(TRICKY_NUMBERS)


def tokens(words: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Text made of a format's words, separators and numbers (ordinary and tricky), in any order."""
    piece = (
        st.sampled_from((*words, " ", "  ", "\t", "\n", ":", "=", ",", ".", "(", ")", "[", "]", "<", ">"))
        | numbers()
    )
    return st.lists(piece, max_size=40).map("".join)
