"""CPU hardware state from sysfs: cpufreq limits and governor, thermal-throttle counts, and the
kernel's view of the CPU vulnerabilities and their mitigations.

Sources: {sysfs}/devices/system/cpu/cpuN/cpufreq/{scaling,cpuinfo}_{min,max}_freq and
scaling_governor (Documentation/admin-guide/pm/cpufreq.rst), cpuN/thermal_throttle/
{core,package}_throttle_count (Documentation/ABI/testing/sysfs-devices-system-cpu), and
vulnerabilities/* (Documentation/admin-guide/hw-vuln/). Vulnerabilities change only with a reboot
or microcode update: they are re-read every ten minutes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.semconv._incubating.attributes.cpu_attributes import CPU_LOGICAL_NUMBER

from otel_sysops.churn import ChurningMeter
from otel_sysops.plugin import Collector, CollectorContext

from ._optional import read_attribute, read_int_attribute
from ._source import require_readable

_CPU = re.compile(r"^cpu(\d+)$")
LIMIT = "sysops.cpu.frequency.limit.type"
# cpufreq file -> sysops.cpu.frequency.limit.type
FREQ_LIMITS = {
    "scaling_min_freq": "scaling_min",
    "scaling_max_freq": "scaling_max",
    "cpuinfo_min_freq": "hardware_min",
    "cpuinfo_max_freq": "hardware_max",
}
VULN_REFRESH = 600.0


def vulnerability_state(text: str) -> str:
    """Reduce a vulnerabilities file to one word: not_affected, vulnerable, mitigated, unknown."""
    text = text.strip()
    if text.startswith("Not affected"):
        return "not_affected"
    if text.startswith("Mitigation"):
        return "mitigated"
    if text.startswith("Vulnerable"):
        return "vulnerable"
    return "unknown"


@dataclass(slots=True)
class CpuHwSnapshot:
    """cpu -> limit type -> Hz; cpu -> governor; throttle counts; vulnerability -> state."""

    limits: dict[int, dict[str, float]] = field(default_factory=dict)
    governors: dict[int, str] = field(default_factory=dict)
    core_throttles: dict[int, int] = field(default_factory=dict)
    package_throttles: dict[int, int] = field(default_factory=dict)  # package id -> count
    vulnerabilities: dict[str, str] = field(default_factory=dict)


class CpuHwCollector(Collector[CpuHwSnapshot]):
    """`sysops.cpu.frequency.limit`, `.governor`, `.throttles`, `.package.throttles`, `.vulnerability`."""

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self._dir = ctx.sysfs / "devices" / "system" / "cpu"
        require_readable(self._dir)
        self._vulns: dict[str, str] = {}
        self._vulns_at: float | None = None

    def _int(self, path: Path) -> int | None:
        return read_int_attribute(self.ctx, path)

    def sample(self, now: float) -> CpuHwSnapshot:
        snap = CpuHwSnapshot()
        try:
            entries = os.listdir(self._dir)
        except OSError:
            self.ctx.count_error("read_error")
            return snap
        cpus = sorted(int(m.group(1)) for e in entries if (m := _CPU.match(e)))
        for cpu in cpus:
            base = self._dir / f"cpu{cpu}"
            freq = base / "cpufreq"
            for fname, kind in FREQ_LIMITS.items():
                khz = self._int(freq / fname)
                if khz is not None:
                    snap.limits.setdefault(cpu, {})[kind] = khz * 1e3
            governor = read_attribute(freq / "scaling_governor")
            if governor is not None and governor.strip():
                snap.governors[cpu] = governor.strip()
            throttle = base / "thermal_throttle"
            core = self._int(throttle / "core_throttle_count")
            if core is not None:
                snap.core_throttles[cpu] = core
            package = self._int(throttle / "package_throttle_count")
            package_id = self._int(base / "topology" / "physical_package_id")
            if package is not None and package_id is not None:
                snap.package_throttles.setdefault(package_id, package)
        if self._vulns_at is None or now - self._vulns_at >= VULN_REFRESH:
            self._vulns_at, self._vulns = now, self._read_vulnerabilities()
        snap.vulnerabilities = self._vulns
        return snap

    def _read_vulnerabilities(self) -> dict[str, str]:
        out: dict[str, str] = {}
        vdir = self._dir / "vulnerabilities"
        try:
            names = sorted(os.listdir(vdir))
        except OSError:
            return out
        for name in names:
            text = read_attribute(vdir / name)
            if text is not None:
                out[name] = vulnerability_state(text)
        return out

    def register(self, meter: Meter, churn: ChurningMeter) -> None:
        meter.create_observable_gauge(
            "sysops.cpu.frequency.limit",
            [self._limits],
            "Hz",
            "cpufreq limits per logical CPU: the policy's (scaling) and the hardware's",
        )
        meter.create_observable_gauge(
            "sysops.cpu.frequency.governor", [self._governors], "1", "Always 1; the cpufreq governor in use"
        )
        meter.create_observable_counter(
            "sysops.cpu.throttles",
            [self._throttles],
            "{event}",
            "Times each logical CPU's core was throttled for temperature",
        )
        meter.create_observable_counter(
            "sysops.cpu.package.throttles",
            [self._package_throttles],
            "{event}",
            "Times each package (socket) was throttled for temperature",
        )
        meter.create_observable_gauge(
            "sysops.cpu.vulnerability",
            [self._vulnerabilities],
            "1",
            "Always 1; each CPU vulnerability the kernel knows and its state",
        )

    def _limits(self, _: CallbackOptions) -> Iterable[Observation]:
        for cpu, kinds in ({} if self.snapshot is None else self.snapshot.limits).items():
            for kind, hz in kinds.items():
                yield Observation(hz, {CPU_LOGICAL_NUMBER: cpu, LIMIT: kind})

    def _governors(self, _: CallbackOptions) -> Iterable[Observation]:
        for cpu, governor in ({} if self.snapshot is None else self.snapshot.governors).items():
            yield Observation(1, {CPU_LOGICAL_NUMBER: cpu, "sysops.cpu.frequency.governor.name": governor})

    def _throttles(self, _: CallbackOptions) -> Iterable[Observation]:
        snap = self.snapshot
        if snap is None:
            return
        for cpu, n in snap.core_throttles.items():
            yield Observation(n, {CPU_LOGICAL_NUMBER: cpu})

    def _package_throttles(self, _: CallbackOptions) -> Iterable[Observation]:
        for package, n in ({} if self.snapshot is None else self.snapshot.package_throttles).items():
            yield Observation(n, {"sysops.cpu.socket": package})

    def _vulnerabilities(self, _: CallbackOptions) -> Iterable[Observation]:
        for name, state in ({} if self.snapshot is None else self.snapshot.vulnerabilities).items():
            yield Observation(
                1, {"sysops.cpu.vulnerability.name": name, "sysops.cpu.vulnerability.state": state}
            )
