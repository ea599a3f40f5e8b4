"""Parse /proc/cpuinfo (x86 layout: `key<TAB>: value`, one block per logical CPU)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class CpuInfo:
    """Per logical CPU: clock in MHz and its (physical id, core id) where given."""

    mhz: dict[int, float] = field(default_factory=dict)
    cores: dict[int, tuple[int, int]] = field(default_factory=dict)
    malformed: int = 0


def parse_cpuinfo(text: str) -> CpuInfo:
    """Return `cpu MHz`, `physical id` and `core id` of each `processor` block; count bad values."""
    out = CpuInfo()
    cpu: int | None = None
    package: int | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            continue
        try:
            if key == "processor":
                cpu, package = int(value), None
                if cpu < 0:
                    raise ValueError(value)
            elif cpu is None:
                continue
            elif key == "cpu MHz":
                mhz = float(value)
                if not 0 <= mhz < 1e7:
                    raise ValueError(value)
                out.mhz[cpu] = mhz
            elif key == "physical id":
                package = int(value)
            elif key == "core id" and package is not None:
                out.cores[cpu] = (package, int(value))
        except ValueError:
            out.malformed += 1
    return out
