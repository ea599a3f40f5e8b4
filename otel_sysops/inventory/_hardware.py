"""Memory (NUMA, ECC, DIMMs), disks, network interfaces, chassis and BIOS."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._read import Roots, children, link_name, parse_cpu_list, read, read_int

# Returns dmidecode's text for one DMI type, or None (not root, not installed, failed).
DmiRunner = Callable[[str], str | None]

_MEMTOTAL = re.compile(r"MemTotal:\s+(\d+)\s*kB")


def _memtotal(text: str | None) -> int | None:
    match = _MEMTOTAL.search(text or "")
    return int(match.group(1)) * 1024 if match else None


def parse_dmidecode(text: str) -> list[dict[str, str]]:
    """Return dmidecode's records as dicts of their `Key: value` lines (the record title as "_type")."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("Handle "):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        stripped = line.strip()
        if not line.startswith("\t"):
            current.setdefault("_type", stripped)  # the record's title line
            continue
        if line.startswith("\t\t"):
            continue  # list continuation lines (e.g. Characteristics)
        key, sep, value = stripped.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    return [r for r in records if r]


def _size_bytes(text: str | None) -> int | None:
    """Return a DMI size ("16 GB", "8192 MB", "No Module Installed") in bytes."""
    if not text:
        return None
    parts = text.split()
    units = {"kB": 1024, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
    if len(parts) == 2 and parts[1] in units and parts[0].isdigit():
        return int(parts[0]) * units[parts[1]]
    return None


def _clean(value: str | None) -> str | None:
    """Drop the placeholders firmware writes where it knows nothing."""
    if value is None or value.strip() in ("", "Not Specified", "Unknown", "None", "To Be Filled By O.E.M."):
        return None
    return value.strip()


def dimms_from_dmidecode(text: str) -> list[dict[str, Any]]:
    """Return the populated DIMMs of `dmidecode -t 17` output."""
    out = []
    for rec in parse_dmidecode(text):
        if rec.get("_type") != "Memory Device":
            continue
        size = _size_bytes(rec.get("Size"))
        if size is None:
            continue  # empty slot
        speed = rec.get("Configured Memory Speed") or rec.get("Speed") or ""
        out.append(
            {
                "locator": _clean(rec.get("Locator")),
                "bank": _clean(rec.get("Bank Locator")),
                "size_bytes": size,
                "type": _clean(rec.get("Type")),
                "speed_mts": int(speed.split()[0]) if speed.split() and speed.split()[0].isdigit() else None,
                "manufacturer": _clean(rec.get("Manufacturer")),
                "part_number": _clean(rec.get("Part Number")),
                "serial": _clean(rec.get("Serial Number")),
            }
        )
    return out


def ecc_from_dmidecode(text: str) -> str | None:
    """Return the memory array's error correction type (`dmidecode -t 16`), e.g. "Multi-bit ECC"."""
    for rec in parse_dmidecode(text):
        if rec.get("_type") == "Physical Memory Array" and rec.get("Error Correction Type"):
            return rec["Error Correction Type"]
    return None


def memory_inventory(roots: Roots, dmidecode: DmiRunner) -> dict[str, Any]:
    """Return total memory, NUMA nodes, ECC support and the DIMMs (root only, else null)."""
    nodes = [
        {
            "id": int(node.name.removeprefix("node")),
            "cpus": parse_cpu_list(read(node / "cpulist")),
            "memory_bytes": _memtotal(read(node / "meminfo")),
        }
        for node in children(roots.sysfs / "devices/system/node", "node[0-9]*")
    ]
    controllers = list(children(roots.sysfs / "devices/system/edac/mc", "mc[0-9]*"))
    ecc_type = None
    array = dmidecode("16")
    if array is not None:
        ecc_type = ecc_from_dmidecode(array)
    if ecc_type is not None:
        ecc: bool | None = ecc_type not in ("None", "Unknown")
    elif controllers:
        ecc = True  # an EDAC memory controller is registered: the kernel sees ECC memory
    else:
        ecc = None  # unknown: no EDAC driver, and DMI needs root
    devices = dmidecode("17")
    return {
        "total_bytes": _memtotal(read(roots.procfs / "meminfo")),
        "numa_nodes": nodes,
        "ecc": ecc,
        "ecc_type": ecc_type,
        "edac_controllers": [
            {"name": mc.name, "type": read(mc / "mc_name"), "size_mb": read_int(mc / "size_mb")}
            for mc in controllers
        ],
        "dimms": dimms_from_dmidecode(devices) if devices is not None else None,
    }


def _udev(roots: Roots, dev: str | None) -> dict[str, str]:
    """Return the udev database properties of a block device ("8:0"), which hold ATA serials."""
    if not dev:
        return {}
    text = read(roots.host(f"/run/udev/data/b{dev}"))
    props = {}
    for line in (text or "").splitlines():
        if line.startswith("E:"):
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


_SKIP_DISKS = ("loop", "ram", "zram", "fd")


def disks_inventory(roots: Roots) -> list[dict[str, Any]]:
    """Return whole block devices of /sys/block (partitions, loop and ram disks left out)."""
    out = []
    for disk in children(roots.sysfs / "block", "*"):
        if disk.name.startswith(_SKIP_DISKS):
            continue
        udev = _udev(roots, read(disk / "dev"))
        sectors = read_int(disk / "size")
        device = disk / "device"
        serial = read(device / "serial") or udev.get("ID_SERIAL_SHORT")
        out.append(
            {
                "name": disk.name,
                "model": read(device / "model") or udev.get("ID_MODEL"),
                "vendor": read(device / "vendor"),
                "serial": serial or None,
                "wwn": read(device / "wwid") or udev.get("ID_WWN"),
                # /sys/block/*/size counts 512-byte sectors whatever the device's sector size.
                "size_bytes": sectors * 512 if sectors is not None else None,
                "rotational": _bool(read_int(disk / "queue/rotational")),
                "removable": _bool(read_int(disk / "removable")),
                "logical_block_bytes": read_int(disk / "queue/logical_block_size"),
                "physical_block_bytes": read_int(disk / "queue/physical_block_size"),
                "firmware": read(device / "firmware_rev") or read(device / "rev"),
                "virtual": not device.exists(),
            }
        )
    return out


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)


def nics_inventory(roots: Roots) -> list[dict[str, Any]]:
    """Return the network interfaces of /sys/class/net: MAC, speed, MTU, driver, state."""
    out = []
    for nic in children(roots.sysfs / "class/net", "*"):
        speed = read_int(nic / "speed")
        out.append(
            {
                "name": nic.name,
                "mac": read(nic / "address"),
                # -1 (or EINVAL) when the link is down or the driver does not say.
                "speed_mbps": speed if speed is not None and speed > 0 else None,
                "mtu": read_int(nic / "mtu"),
                "driver": link_name(nic / "device/driver"),
                "operstate": read(nic / "operstate"),
                "duplex": read(nic / "duplex"),
                "virtual": not (nic / "device").exists(),
            }
        )
    return out


# SMBIOS 3.x, 7.4.1: chassis types.
_CHASSIS = {
    1: "other",
    2: "unknown",
    3: "desktop",
    4: "low profile desktop",
    6: "mini tower",
    7: "tower",
    8: "portable",
    9: "laptop",
    10: "notebook",
    13: "all in one",
    17: "main server chassis",
    23: "rack mount chassis",
    24: "sealed-case pc",
    28: "blade",
    29: "blade enclosure",
    30: "tablet",
    31: "convertible",
    35: "mini pc",
    36: "stick pc",
}


def dmi_inventory(roots: Roots) -> dict[str, Any] | None:
    """Return system, board, chassis and BIOS identity from /sys/class/dmi/id (serials need root)."""
    dmi = roots.sysfs / "class/dmi/id"
    if not dmi.is_dir():
        return None

    def get(name: str) -> str | None:
        return _clean(read(dmi / name))

    chassis_type = read_int(dmi / "chassis_type")
    return {
        "system": {
            "vendor": get("sys_vendor"),
            "product": get("product_name"),
            "version": get("product_version"),
            "serial": get("product_serial"),
            "uuid": get("product_uuid"),
            "family": get("product_family"),
        },
        "board": {
            "vendor": get("board_vendor"),
            "name": get("board_name"),
            "version": get("board_version"),
            "serial": get("board_serial"),
        },
        "chassis": {
            "vendor": get("chassis_vendor"),
            "type": _CHASSIS.get(chassis_type, str(chassis_type)) if chassis_type is not None else None,
            "serial": get("chassis_serial"),
            "asset_tag": get("chassis_asset_tag"),
        },
        "bios": {
            "vendor": get("bios_vendor"),
            "version": get("bios_version"),
            "date": get("bios_date"),
            "release": get("bios_release"),
        },
    }
