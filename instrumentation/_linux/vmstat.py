"""Parse /proc/vmstat: `name value` lines (proc(5))."""

from __future__ import annotations

from .keyed import Parsed as VmStat
from .keyed import parse_flat_keyed as parse_vmstat

__all__ = ["VmStat", "parse_vmstat"]
