"""The inventory on a frozen two-socket host tree, on the live machine, and its pure parsers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_sysops.inventory import (
    Roots,
    collect_inventory,
    dimms_from_dmidecode,
    inventory_hash,
    parse_cpuinfo,
    parse_dmidecode,
    parse_os_release,
)
from tests.conftest import FIXTURES

HOST = FIXTURES / "inventory-host"

DMIDECODE_17 = """# dmidecode 3.4
Handle 0x0027, DMI type 17, 92 bytes
Memory Device
\tArray Handle: 0x0026
\tTotal Width: 72 bits
\tData Width: 64 bits
\tSize: 16 GB
\tForm Factor: DIMM
\tLocator: P1-DIMMA1
\tBank Locator: P0_Node0_Channel0_Dimm0
\tType: DDR4
\tSpeed: 2933 MT/s
\tManufacturer: Samsung
\tSerial Number: 40A1B2C3
\tPart Number: M393A2K43DB3-CWE
\tConfigured Memory Speed: 2666 MT/s

Handle 0x0028, DMI type 17, 92 bytes
Memory Device
\tSize: No Module Installed
\tLocator: P1-DIMMA2
"""

DMIDECODE_16 = """Handle 0x0026, DMI type 16, 23 bytes
Physical Memory Array
\tLocation: System Board Or Motherboard
\tUse: System Memory
\tError Correction Type: Multi-bit ECC
\tMaximum Capacity: 2 TB
"""


def fixture_roots(base: Path = HOST) -> Roots:
    return Roots(base / "proc", base / "sys", base / "host")


def no_dmidecode(dmi_type: str) -> str | None:
    """The runner of an unprivileged agent: dmidecode needs root."""
    return None


def root_dmidecode(dmi_type: str) -> str | None:
    """dmidecode's documented output for the two types the inventory asks for."""
    return {"16": DMIDECODE_16, "17": DMIDECODE_17}.get(dmi_type)


def test_fixture_host_inventory() -> None:
    doc = collect_inventory(fixture_roots(), "fixture-host", dmidecode=no_dmidecode, environ={})
    assert doc["schema_version"] == 1
    assert doc["os"]["pretty_name"] == "Debian GNU/Linux 12 (bookworm)"
    assert doc["os"]["kernel"]["release"] == "6.1.0-18-amd64"
    assert doc["os"]["boot_time"] == 1700000000
    cpu = doc["cpu"]
    assert cpu["model"] == "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz"
    assert cpu["vendor"] == "GenuineIntel"
    assert (cpu["sockets"], cpu["cores"], cpu["threads"]) == (2, 4, 8)
    assert "avx2" in cpu["flags"]
    assert cpu["microcode"] == "0x5003604"
    assert cpu["frequency"]["max_mhz"] == 3900.0
    assert cpu["frequency"]["nominal_mhz"] is None  # cpufreq gives the range
    l3 = next(c for c in cpu["caches"] if c["level"] == 3)
    assert (l3["size_bytes"], l3["instances"], l3["shared_cpus"]) == (28160 * 1024, 2, 4)
    l1d = next(c for c in cpu["caches"] if c["level"] == 1 and c["type"] == "data")
    assert l1d["instances"] == 4
    mem = doc["memory"]
    assert mem["total_bytes"] == 32768000 * 1024
    assert [n["cpus"] for n in mem["numa_nodes"]] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert mem["ecc"] is True  # EDAC controllers registered
    assert mem["dimms"] is None  # unprivileged: null, not an error
    disks = {d["name"]: d for d in doc["disks"]}
    assert set(disks) == {"nvme0n1", "sda"}  # loop devices left out
    assert disks["nvme0n1"]["serial"] == "S4EWNX0R123456"
    assert disks["nvme0n1"]["rotational"] is False
    assert disks["sda"]["rotational"] is True
    assert disks["sda"]["serial"] == "ZC1ABCDE"  # from the udev database
    assert disks["sda"]["size_bytes"] == 7814037168 * 512
    nics = {n["name"]: n for n in doc["network_interfaces"]}
    assert nics["eno1"] == {
        "name": "eno1",
        "mac": "3c:ec:ef:01:02:03",
        "speed_mbps": 10000,
        "mtu": 9000,
        "driver": "ixgbe",
        "operstate": "up",
        "duplex": "full",
        "virtual": False,
    }
    assert nics["lo"]["virtual"] is True
    assert nics["lo"]["speed_mbps"] is None
    dmi = doc["dmi"]
    assert dmi["system"]["product"] == "SYS-6029P-TR"
    assert dmi["system"]["serial"] is None  # root-only file absent
    assert dmi["system"]["family"] is None  # firmware placeholder dropped
    assert dmi["chassis"]["type"] == "rack mount chassis"
    assert dmi["bios"]["version"] == "3.4"
    assert doc["container"]["in_container"] is False or doc["container"]["runtime"] is not None
    assert doc["container"]["kubernetes"] is None
    assert doc["agent"]["version"]
    assert doc["hash"] == inventory_hash(doc)


def test_root_adds_dimms_and_ecc_type() -> None:
    doc = collect_inventory(fixture_roots(), "h", dmidecode=root_dmidecode, environ={})
    mem = doc["memory"]
    assert mem["ecc_type"] == "Multi-bit ECC"
    assert mem["ecc"] is True
    assert mem["dimms"] == [
        {
            "locator": "P1-DIMMA1",
            "bank": "P0_Node0_Channel0_Dimm0",
            "size_bytes": 16 * 1024**3,
            "type": "DDR4",
            "speed_mts": 2666,
            "manufacturer": "Samsung",
            "part_number": "M393A2K43DB3-CWE",
            "serial": "40A1B2C3",
        }
    ]


def test_kubernetes_context_from_downward_api() -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "K8S_NODE_NAME": "node-7", "K8S_POD_NAME": "agent-x"}
    doc = collect_inventory(fixture_roots(), "h", dmidecode=no_dmidecode, environ=env)
    assert doc["container"]["kubernetes"]["node"] == "node-7"
    assert doc["container"]["kubernetes"]["pod"] == "agent-x"


def test_empty_roots_give_nulls_not_errors(tmp_path: Path) -> None:
    doc = collect_inventory(Roots(tmp_path, tmp_path, tmp_path), "h", dmidecode=no_dmidecode, environ={})
    assert doc["cpu"] is None
    assert doc["dmi"] is None
    assert doc["disks"] == []
    assert doc["memory"]["total_bytes"] is None
    assert doc["os"]["name"] is None


def test_hash_ignores_the_clock_and_follows_changes(tmp_path: Path) -> None:
    base = tmp_path / "host"
    shutil.copytree(HOST, base, symlinks=True)
    first = collect_inventory(fixture_roots(base), "h", dmidecode=no_dmidecode, environ={})
    again = collect_inventory(fixture_roots(base), "h", dmidecode=no_dmidecode, environ={})
    assert first["collected_at"] != again["collected_at"] or first["hash"] == again["hash"]
    assert first["hash"] == again["hash"]
    (base / "sys/class/net/eno1/mtu").write_text("1500\n")
    changed = collect_inventory(fixture_roots(base), "h", dmidecode=no_dmidecode, environ={})
    assert changed["hash"] != first["hash"]


def test_parsers_literal() -> None:
    assert parse_os_release('ID=debian\nNAME="Debian"\n# c\nbad\n') == {"ID": "debian", "NAME": "Debian"}
    assert parse_cpuinfo("processor : 0\nflags : a b\n\nprocessor : 1\n") == [
        {"processor": "0", "flags": "a b"},
        {"processor": "1"},
    ]
    assert [r["_type"] for r in parse_dmidecode(DMIDECODE_17)] == ["Memory Device", "Memory Device"]
    assert len(dimms_from_dmidecode(DMIDECODE_17)) == 1


@given(st.text())
def test_parsers_never_raise(text: str) -> None:
    parse_cpuinfo(text)
    parse_os_release(text)
    dimms_from_dmidecode(text)


def test_live_machine_inventory() -> None:
    """The CLI on this machine: valid JSON, the kernel and CPU found, nothing raised."""
    # CI's SYSOPS_TEST_STRICT is not a setting: the agent would refuse it as a typo.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSOPS_")}
    done = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "inventory"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["os"]["kernel"]["release"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
    assert doc["cpu"]["threads"] >= 1
    assert doc["memory"]["total_bytes"] > 0


@pytest.mark.parametrize("field", ["os", "cpu", "memory", "disks", "network_interfaces", "gpus", "dmi"])
def test_every_section_present(field: str) -> None:
    doc = collect_inventory(fixture_roots(), "h", dmidecode=no_dmidecode, environ={})
    assert field in doc
