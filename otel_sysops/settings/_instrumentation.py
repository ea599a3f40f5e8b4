"""Settings of the host collectors (`[instrumentation]`, `SYSOPS_INSTRUMENTATION__*`)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ._base import Section
from ._instrumentation_host import DiskHealthSettings, KernelSettings
from ._instrumentation_net import CgroupSettings, NetworkSettings, ProcessSettings


def _check_patterns(patterns: list[str]) -> list[str]:
    """Refuse a pattern that is not a valid regular expression, naming it."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from exc
    return patterns


class DiskSettings(Section):
    """Which block devices `system.disk.*` reports (regular expressions on the kernel's name)."""

    # Empty: every whole device. A name must match one pattern to be reported.
    include: list[str] = []
    # Applied after `include`. Partitions are never reported: only names under {sysfs}/block are.
    exclude: list[str] = [r"^(loop|ram|zram)\d+$"]

    _valid = field_validator("include", "exclude")(_check_patterns)


class FilesystemSettings(Section):
    """Which mounts `system.filesystem.*` reports, and how long statvfs may take."""

    # Empty: every mountpoint / every type. Regular expressions, matched with re.search.
    include_mountpoints: list[str] = []
    # The host's pseudo trees, and container runtimes' per-container mounts (their rootfs
    # duplicates the host's disk), as node_exporter excludes them.
    exclude_mountpoints: list[str] = [
        r"^/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+|var/lib/containers/storage/.+"
        r"|var/lib/kubelet/pods/.+|run/containerd/.+|run/k3s/containerd/.+)($|/)"
    ]
    include_types: list[str] = []
    # Kernel pseudo filesystems with no space to run out of; tmpfs stays in (a full /run or
    # /tmp breaks services), overlay and squashfs go (container layers and snaps are read-only
    # copies of space counted elsewhere), as node_exporter decides.
    exclude_types: list[str] = [
        r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|efivarfs|fusectl"
        r"|fuse\.lxcfs|fuse\.portal|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore"
        r"|ramfs|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|nfsd)$"
    ]
    # Seconds one statvfs may take before its mount is reported as hung and skipped.
    timeout: float = Field(1.0, gt=0, le=60)

    _valid = field_validator("include_mountpoints", "exclude_mountpoints", "include_types", "exclude_types")(
        _check_patterns
    )


class InstrumentationSettings(Section):
    """Which collectors run; per-family options live beside them."""

    # Entry-point names to run; None runs every collector the host supports.
    enabled: list[str] | None = None
    # Entry-point names never to run, applied after `enabled`.
    disabled: list[str] = []
    disk: DiskSettings = DiskSettings()
    filesystem: FilesystemSettings = FilesystemSettings()
    network: NetworkSettings = NetworkSettings()
    process: ProcessSettings = ProcessSettings()
    cgroup: CgroupSettings = CgroupSettings()
    kernel: KernelSettings = KernelSettings()
    disk_health: DiskHealthSettings = DiskHealthSettings()
