"""Read the attributes of one network interface under /sys/class/net/<iface>/
(Documentation/ABI/testing/sysfs-class-net, .../sysfs-class-net-statistics, bonding.rst).

Reading `carrier`, `speed` or `duplex` fails with EINVAL while the interface is administratively
down: such a value is simply absent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Integer attributes read per interface (file name -> field).
INT_FILES = (
    "carrier",
    "carrier_changes",
    "carrier_up_count",
    "carrier_down_count",
    "speed",
    "mtu",
    "tx_queue_len",
)
TEXT_FILES = ("operstate", "duplex", "address")


@dataclass(slots=True)
class Interface:
    """One interface's readable attributes; a bond's slaves and their MII status."""

    ints: dict[str, int] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    # bond only: slave -> "up" / "down" (bonding_slave/mii_status of each slave)
    slaves: dict[str, str] = field(default_factory=dict)
    malformed: int = 0


def read_interface(path: Path, read: Callable[[Path], str | None]) -> Interface:
    """Read one interface directory with `read` (None for a missing or unreadable file)."""
    out = Interface()
    for name in INT_FILES:
        text = read(path / name)
        if text is None:
            continue
        try:
            out.ints[name] = int(text.strip())
        except ValueError:
            out.malformed += 1
    for name in TEXT_FILES:
        text = read(path / name)
        if text is not None and text.strip():
            out.texts[name] = text.strip()
    slaves = read(path / "bonding" / "slaves")
    if slaves is not None:
        for slave in slaves.split():
            status = read(path.parent / slave / "bonding_slave" / "mii_status")
            out.slaves[slave] = status.strip() if status is not None else "unknown"
    return out
