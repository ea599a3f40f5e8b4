"""The kernel clock discipline as adjtimex(2) reports it (read only: modes = 0).

`struct timex` (include/uapi/linux/timex.h): offset in microseconds (nanoseconds with STA_NANO),
freq and ppsfreq/stabil in parts per million scaled by 2**16, maxerror and esterror in
microseconds, tick in microseconds, jitter in microseconds (nanoseconds with STA_NANO).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Protocol

STA_UNSYNC = 0x0040
STA_NANO = 0x2000
TIME_ERROR = 5  # the clock state adjtimex returns when the clock is not synchronised
_PPM = 65536.0  # freq, ppsfreq and stabil are scaled ppm


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class Timex:
    """One adjtimex reading in plain units (seconds, ratios)."""

    state: int  # adjtimex's return value: TIME_OK 0 ... TIME_ERROR 5
    status: int  # STA_* bits
    offset: float  # seconds
    frequency_adjustment: float  # ratio: 1 + freq ppm / 1e6
    max_error: float  # seconds
    estimated_error: float  # seconds
    constant: int
    tick: float  # seconds
    tai: int  # seconds
    pps_frequency: float  # Hz offset, ppm
    pps_jitter: float  # seconds
    pps_shift: int  # seconds (2**shift is the calibration interval)
    pps_stability: float  # ppm
    pps_jitter_count: int
    pps_calibrations: int
    pps_errors: int
    pps_stability_exceeded: int

    @property
    def synchronised(self) -> bool:
        """True unless the kernel marks the clock unsynchronised (STA_UNSYNC or TIME_ERROR)."""
        return not self.status & STA_UNSYNC and self.state != TIME_ERROR


def from_struct(state: int, tx: _Timex) -> Timex:
    """Convert the raw struct to seconds and ratios."""
    sub = 1e-9 if tx.status & STA_NANO else 1e-6
    return Timex(
        state=state,
        status=tx.status,
        offset=tx.offset * sub,
        frequency_adjustment=1 + tx.freq / _PPM / 1e6,
        max_error=tx.maxerror * 1e-6,
        estimated_error=tx.esterror * 1e-6,
        constant=tx.constant,
        tick=tx.tick * 1e-6,
        tai=tx.tai,
        pps_frequency=tx.ppsfreq / _PPM,
        pps_jitter=tx.jitter * sub,
        pps_shift=tx.shift,
        pps_stability=tx.stabil / _PPM,
        pps_jitter_count=tx.jitcnt,
        pps_calibrations=tx.calcnt,
        pps_errors=tx.errcnt,
        pps_stability_exceeded=tx.stbcnt,
    )


class TimexSource(Protocol):
    """Where readings come from: the C library's adjtimex, or a test's recorded values."""

    def read(self) -> Timex: ...


class LibcTimex:
    """adjtimex(2) through the C library, modes 0 (no change to the clock)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c") or "libc.so.6"
        self._fn = ctypes.CDLL(name, use_errno=True).adjtimex
        self._fn.argtypes = [ctypes.POINTER(_Timex)]
        self._fn.restype = ctypes.c_int

    def read(self) -> Timex:
        tx = _Timex()
        state = self._fn(ctypes.byref(tx))
        if state < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, "adjtimex failed")
        return from_struct(state, tx)
