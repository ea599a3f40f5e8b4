"""The CPU section: model, vendor, topology, flags, caches, microcode, frequency range."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from ._read import Roots, children, parse_cpu_list, parse_size, read, read_int


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """Return /proc/cpuinfo as one dict per processor block (keys as the kernel prints them)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _first(blocks: list[dict[str, str]], *keys: str) -> str | None:
    for block in blocks:
        for key in keys:
            if block.get(key):
                return block[key]
    return None


def _processors(blocks: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    # Some architectures print a leading block without "processor" (e.g. s390x, arm's summary).
    return (b for b in blocks if "processor" in b)


def _caches(roots: Roots) -> list[dict[str, Any]]:
    """Return one entry per cache level and type: size of one instance and how many instances."""
    seen: dict[tuple[int, str], dict[str, Any]] = {}
    instances: dict[tuple[int, str], set[str]] = {}
    for cpu in children(roots.sysfs / "devices/system/cpu", "cpu[0-9]*"):
        for index in children(cpu / "cache", "index[0-9]*"):
            level = read_int(index / "level")
            kind = read(index / "type")
            if level is None or kind is None:
                continue
            key = (level, kind)
            shared = read(index / "shared_cpu_list") or cpu.name
            instances.setdefault(key, set()).add(shared)
            if key not in seen:
                seen[key] = {
                    "level": level,
                    "type": kind.lower(),
                    "size_bytes": parse_size(read(index / "size")),
                    "ways": read_int(index / "ways_of_associativity"),
                    "line_size_bytes": read_int(index / "coherency_line_size"),
                    "shared_cpus": len(parse_cpu_list(shared)) or None,
                }
    out = []
    for key in sorted(seen):
        entry = seen[key]
        entry["instances"] = len(instances[key])
        out.append(entry)
    return out


def _frequency(roots: Roots, blocks: list[dict[str, str]]) -> dict[str, Any]:
    """Return the frequency range in MHz (cpufreq), and the nominal one cpuinfo reports."""
    freq = roots.sysfs / "devices/system/cpu/cpu0/cpufreq"
    low = read_int(freq / "cpuinfo_min_freq")
    high = read_int(freq / "cpuinfo_max_freq")
    mhz = _first(blocks, "cpu MHz")
    try:
        nominal = round(float(mhz), 1) if mhz else None
    except ValueError:
        nominal = None
    return {
        "min_mhz": low / 1000 if low is not None else None,
        "max_mhz": high / 1000 if high is not None else None,
        # The current clock changes all the time: it is left out so the inventory hash is stable;
        # without cpufreq (most VMs) the cpuinfo figure of the first CPU stands for the nominal clock.
        "nominal_mhz": nominal if high is None else None,
        "driver": read(freq / "scaling_driver"),
        "governor": read(freq / "scaling_governor"),
    }


def cpu_inventory(roots: Roots, counts: Mapping[str, int | None] | None = None) -> dict[str, Any] | None:
    """Return the CPU section, or None when /proc/cpuinfo is unreadable.

    `counts` (sockets, cores, threads) come from the cpu collector's own reader, so the inventory
    and `system.cpu.*.count` agree; None (no cpu plugin) leaves them null.
    """
    text = read(roots.procfs / "cpuinfo")
    if text is None:
        return None
    blocks = parse_cpuinfo(text)
    counts = counts or {}
    sockets, cores, threads = counts.get("sockets"), counts.get("cores"), counts.get("threads")
    flags_text = _first(blocks, "flags", "Features")
    microcodes = sorted({b["microcode"] for b in _processors(blocks) if b.get("microcode")})
    return {
        "model": _first(blocks, "model name", "Processor", "cpu model", "cpu"),
        "vendor": _first(blocks, "vendor_id", "CPU implementer", "vendor"),
        "family": _first(blocks, "cpu family"),
        "model_id": _first(blocks, "model"),
        "stepping": _first(blocks, "stepping"),
        "sockets": sockets,
        "cores": cores,
        "threads": threads,
        "flags": sorted(flags_text.split()) if flags_text else [],
        "caches": _caches(roots),
        # Several values mean the sockets run different microcode (worth knowing).
        "microcode": microcodes[0] if len(microcodes) == 1 else (microcodes or None),
        "frequency": _frequency(roots, blocks),
        "vulnerabilities": {
            p.name: read(p) for p in children(roots.sysfs / "devices/system/cpu/vulnerabilities", "*")
        }
        or None,
    }
