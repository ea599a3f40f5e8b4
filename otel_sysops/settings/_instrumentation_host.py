"""Settings of the kernel and disk-health collectors (`[instrumentation.kernel]`, `.disk_health`)."""

from __future__ import annotations

from pydantic import Field

from ._base import Section


class KernelSettings(Section):
    """Kernel activity: interrupts, softirqs, scheduler, entropy, hung tasks."""

    # Report every interrupt line per CPU (/proc/interrupts): CPUs x IRQs series, so off by default;
    # the totals per softirq type are always reported.
    interrupts_per_cpu: bool = False


class DiskHealthSettings(Section):
    """NVMe and SATA health through `smartctl --json` (smartmontools)."""

    # The smartctl program: a name looked up on PATH, or a path.
    smartctl: str = "smartctl"
    # Seconds between two health readings of a device (smartctl wakes the device; health moves slowly).
    interval: float = Field(300.0, ge=10, le=86_400)
    # Seconds one smartctl run may take before it is abandoned (a hung device).
    timeout: float = Field(20.0, gt=0, le=300)
