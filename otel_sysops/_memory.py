"""Keep the ring store's untouched history out of resident memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from typing import Any

_log = logging.getLogger(__name__)

# The cyclic GC's young generation is collected after this many container allocations net of
# frees (CPython's default: 700). A default tick allocates a few thousand (its collection, kept
# until the next tick) and leaves no cycle behind, so at 700 the GC scanned live tick data several
# times per tick for nothing.
GC_YOUNG_THRESHOLD = 10_000

# mallopt(3): M_MMAP_THRESHOLD; 128 KiB is glibc's initial value. M_ARENA_MAX.
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 128 * 1024
_M_ARENA_MAX = -8


def _libc(function: str) -> Any | None:
    """Return the C library's `function` (None where there is no such library or function)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None


def _mallopt(param: int, value: int) -> bool:
    """Call glibc's mallopt(3); return whether it took the value (False elsewhere than glibc)."""
    mallopt = _libc("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(param, value))


def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold at 128 KiB; return whether it was set.

    The ring store allocates its rings zeroed and relies on untouched pages staying unmapped. glibc
    raises the threshold after a large block is freed (the store frees one whenever a metric's
    block grows), after which large zeroed arrays come from the heap and are cleared page by page:
    measured here, 10 MB more resident after the first ticks. Setting the threshold explicitly
    turns that adjustment off. Elsewhere than glibc this does nothing.
    """
    done = _mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)
    _log.debug("mmap threshold pinned at %d bytes: %s", _THRESHOLD, done)
    return done


def tune_gc() -> tuple[int, ...]:
    """Collect the cyclic GC's young generation every GC_YOUNG_THRESHOLD allocations instead of
    every 700 (the older generations' ratios unchanged); return the thresholds set.

    For the agent's process only (`otel-sysops run`): the pipeline freezes everything alive after
    its first tick (`gc.freeze()`), so the collections left scan only what later ticks create."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    return gc.get_threshold()


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Let every thread allocate from `arenas` glibc arenas; return whether it was set.

    glibc gives each thread that allocates under contention an arena of its own (up to 8 per
    core), and each keeps its own free, fragmented but resident memory. The agent's threads (the
    tick, the HTTP server, the OTLP worker, gRPC's) mostly run under the GIL, so sharing one arena
    costs little time. Call it before threads start. Elsewhere than glibc this does nothing.
    """
    done = _mallopt(_M_ARENA_MAX, arenas)
    _log.debug("malloc arenas limited to %d: %s", arenas, done)
    return done


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc malloc_trim); return whether it ran.

    After a backlog drains (an OTLP endpoint that was down comes back), the freed collections leave
    free but resident heap behind; trimming returns it. Elsewhere than glibc this does nothing.
    """
    trim = _libc("malloc_trim")
    if trim is None:
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
