"""The OS, container and Kubernetes sections, GPUs, and dmidecode (root only)."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from otel_sysops.settings import Settings

from ._read import Roots, read

_log = logging.getLogger(__name__)

# Collectors' readers the inventory uses, so both report the same host (instrumentation/inventory.py).
INVENTORY_GROUP = "otel_sysops.inventory"


def parse_os_release(text: str) -> dict[str, str]:
    """Return os-release(5) `KEY=value` pairs with shell quoting removed."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def os_inventory(roots: Roots) -> dict[str, Any]:
    """Return the distribution (os-release), the kernel and the boot time."""
    release: dict[str, str] = {}
    for rel in ("/etc/os-release", "/usr/lib/os-release"):
        text = read(roots.host(rel))
        if text is not None:
            release = parse_os_release(text)
            break
    boot = None
    for line in (read(roots.procfs / "stat") or "").splitlines():
        if line.startswith("btime "):
            try:
                boot = int(line.split()[1])
            except (IndexError, ValueError):
                boot = None
    return {
        "name": release.get("NAME"),
        "id": release.get("ID"),
        "version": release.get("VERSION"),
        "version_id": release.get("VERSION_ID"),
        "pretty_name": release.get("PRETTY_NAME"),
        "kernel": {
            "name": read(roots.procfs / "sys/kernel/ostype"),
            "release": read(roots.procfs / "sys/kernel/osrelease"),
            "version": read(roots.procfs / "sys/kernel/version"),
            "arch": platform.machine() or None,
            "cmdline": read(roots.procfs / "cmdline"),
        },
        "hostname": read(roots.host("/etc/hostname")) or read(roots.procfs / "sys/kernel/hostname"),
        "boot_time": boot,
        "machine_id": read(roots.host("/etc/machine-id")),
    }


# Words in /proc/1/cgroup (and mountinfo) that name a container runtime.
_RUNTIMES = (
    ("kubepods", "kubernetes"),
    ("docker", "docker"),
    ("libpod", "podman"),
    ("containerd", "containerd"),
    ("crio", "cri-o"),
    ("lxc", "lxc"),
)


def container_inventory(roots: Roots, environ: Mapping[str, str]) -> dict[str, Any]:
    """Return whether the agent itself runs in a container, and its Kubernetes context."""
    runtime = None
    if environ.get("container"):
        runtime = environ["container"]  # systemd's convention (podman, lxc, systemd-nspawn set it)
    elif os.path.exists("/.dockerenv"):
        runtime = "docker"
    elif os.path.exists("/run/.containerenv"):
        runtime = "podman"
    else:
        # procfs resolves "self" to the reading process: the agent's own cgroup, under any root.
        text = read(roots.procfs / "self/cgroup")
        for word, name in _RUNTIMES:
            if text and word in text:
                runtime = name
                break
    namespace = environ.get("K8S_NAMESPACE_NAME") or read_sa_namespace()
    in_k8s = bool(environ.get("KUBERNETES_SERVICE_HOST")) or namespace is not None
    return {
        "in_container": runtime is not None,
        "runtime": runtime,
        "kubernetes": {
            "node": environ.get("K8S_NODE_NAME"),
            "pod": environ.get("K8S_POD_NAME"),
            "namespace": namespace,
            "pod_uid": environ.get("K8S_POD_UID"),
        }
        if in_k8s
        else None,
        "host_root": str(roots.host_root),
    }


def read_sa_namespace() -> str | None:
    """Return the pod's namespace from the mounted service account, if any."""
    return read_path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def read_path(path: str) -> str | None:
    """Return a file's stripped text, or None."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def plugin_face(name: str) -> Callable[[Settings], Any] | None:
    """Return the `otel_sysops.inventory` entry point `name` (a collector's reader), or None."""
    for ep in entry_points(group=INVENTORY_GROUP):
        if ep.name == name:
            try:
                face: Callable[[Settings], Any] = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not fail the inventory
                _log.debug("inventory plugin %s cannot be loaded: %s", name, exc)
                return None
            return face
    return None


def gpu_inventory(settings: Settings) -> list[dict[str, Any]] | None:
    """Return the GPUs the gpu instrumentation sees (its NVML binding, the sysfs root), or None
    when the gpu section is off, the plugin is absent or the driver fails."""
    face = plugin_face("gpu")
    if face is None:
        return None
    try:
        found = face(settings)
    except Exception as exc:  # noqa: BLE001 - a driver failure must not fail the inventory
        _log.debug("GPU inventory failed: %s", exc)
        return None
    return None if found is None else list(found)


def run_dmidecode(dmi_type: str) -> str | None:
    """Return `dmidecode -t TYPE` output when run as root with dmidecode installed, else None."""
    if os.geteuid() != 0:
        return None
    binary = shutil.which("dmidecode")
    if binary is None:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [binary, "-q", "-t", dmi_type], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _log.debug("dmidecode failed: %s", exc)
        return None
    if done.returncode != 0:
        _log.debug("dmidecode exited %d: %s", done.returncode, done.stderr.strip())
        return None
    return done.stdout
