"""Settings of the network, process and cgroup collectors (`[instrumentation.network]` and so on)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Section


class NetworkSettings(Section):
    """Per-interface counters, connection counts, TCP/UDP protocol counters, conntrack."""

    # fnmatch patterns of interface names; empty includes every interface. Loopback is included
    # by default, as node_exporter and the Collector's hostmetrics receiver do.
    include_interfaces: list[str] = []
    # fnmatch patterns of interface names never reported, applied after `include_interfaces`.
    exclude_interfaces: list[str] = []
    # Count sockets by transport and state (`system.network.connection.count`).
    connections: bool = True
    # "auto": netlink sock_diag when it sees the namespace being reported, else /proc/net/tcp*.
    connection_source: Literal["auto", "netlink", "procfs"] = "auto"
    # Read PID 1's network namespace ({procfs}/1/net/...) instead of the agent's ({procfs}/net/...).
    # None: on when `procfs` is not /proc (a container with the host's /proc mounted).
    host_netns: bool | None = None


class ProcessSettings(Section):
    """Process counts by state and the top-N processes by CPU and by resident memory."""

    # Processes reported per ranking (CPU, resident memory); the union is reported, so up to 2N.
    top_n: int = Field(10, ge=0, le=1000)


class CgroupSettings(Section):
    """cgroup v2 CPU, memory, I/O and pressure of the top-level slices and their children."""

    # fnmatch patterns of top-level groups (directly under the cgroup root) to report.
    groups: list[str] = ["system.slice", "user.slice", "machine.slice", "kubepods*"]
    # Also report the direct children of those groups (services, pods, containers).
    children: bool = True
    # At most this many groups are reported per tick (top-level groups first).
    max_groups: int = Field(50, ge=1, le=10_000)
    # Report the root group of the hierarchy as path "/" (a container's own totals in a
    # container, the machine's in a VM).
    include_root: bool = True
