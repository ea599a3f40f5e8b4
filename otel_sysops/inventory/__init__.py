"""The host's inventory: OS, CPU, memory, disks, NICs, GPUs, chassis/BIOS, container context.

Everything is read under the settings' roots (procfs, sysfs, host root) so the agent in a container
describes the host. A field that needs privileges is null without them; nothing raises.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Mapping
from typing import Any

from otel_sysops import __version__
from otel_sysops.settings import Settings, load_settings

from ._cpu import cpu_inventory, parse_cpuinfo
from ._hardware import (
    DmiRunner,
    dimms_from_dmidecode,
    disks_inventory,
    dmi_inventory,
    memory_inventory,
    nics_inventory,
    parse_dmidecode,
)
from ._read import Roots
from ._system import (
    INVENTORY_GROUP,
    container_inventory,
    gpu_inventory,
    os_inventory,
    parse_os_release,
    plugin_face,
    run_dmidecode,
)

_log = logging.getLogger(__name__)

# Bump when a field changes meaning or type (docs/schemas/inventory.json).
SCHEMA_VERSION = 1
# Fields left out of the hash, so "changed" means the hardware or software changed, not the clock.
_VOLATILE = ("collected_at", "hash")

__all__ = [
    "INVENTORY_GROUP",
    "SCHEMA_VERSION",
    "DmiRunner",
    "Roots",
    "collect_inventory",
    "dimms_from_dmidecode",
    "inventory_hash",
    "parse_cpuinfo",
    "parse_dmidecode",
    "parse_os_release",
]


def inventory_hash(doc: Mapping[str, Any]) -> str:
    """Return the SHA-256 of the inventory's canonical JSON, without its volatile fields."""
    stable = {k: v for k, v in doc.items() if k not in _VOLATILE}
    blob = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def collect_inventory(
    roots: Roots,
    host: str,
    *,
    dmidecode: DmiRunner = run_dmidecode,
    environ: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Return the inventory document (JSON-able), with its schema version and hash.

    `settings` (the agent's) reach the collectors' readers the inventory uses (CPU counts, GPUs):
    without them, defaults with the given roots.
    """
    env = os.environ if environ is None else environ
    cfg = settings if settings is not None else _settings_for(roots)
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "host": host,
        "collected_at": time.time(),
        "os": os_inventory(roots),
        "cpu": cpu_inventory(roots, _cpu_counts(cfg)),
        "memory": memory_inventory(roots, dmidecode),
        "disks": disks_inventory(roots),
        "network_interfaces": nics_inventory(roots),
        "gpus": gpu_inventory(cfg),
        "dmi": dmi_inventory(roots),
        "container": container_inventory(roots, env),
        "agent": {"version": __version__, "python": platform.python_version()},
    }
    doc["hash"] = inventory_hash(doc)
    return doc


def _settings_for(roots: Roots) -> Settings:
    """Return default settings with the given roots (no environment: the caller chose the roots)."""
    overrides = {
        "procfs": str(roots.procfs),
        "sysfs": str(roots.sysfs),
        "host_root": str(roots.host_root),
        "prometheus": {"enabled": False},
    }
    return load_settings(None, overrides, environ={})


def _cpu_counts(settings: Settings) -> dict[str, int | None] | None:
    face = plugin_face("cpu")
    if face is None:
        return None
    try:
        counts: dict[str, int | None] = face(settings)
    except Exception as exc:  # noqa: BLE001 - an unreadable source must not fail the inventory
        _log.debug("CPU counts unavailable: %s", exc)
        return None
    return counts
