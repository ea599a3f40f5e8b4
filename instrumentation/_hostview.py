"""Self-check: does the agent see the host, or a container's view of it? Warn once per collector."""

from __future__ import annotations

import logging
from pathlib import Path

from otel_sysops.plugin import CollectorContext

_log = logging.getLogger(__name__)

# Names PID 1 has on a host (or a VM) booted normally.
HOST_INITS = frozenset(
    {"systemd", "init", "openrc-init", "runit", "s6-svscan", "launchd", "upstart", "busybox"}
)
DEFAULT_PROCFS = Path("/proc")


def pid1_name(procfs: Path) -> str | None:
    """Return PID 1's command name under `procfs`, None when it cannot be read."""
    try:
        return (procfs / "1" / "comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def process_view_problem(procfs: Path) -> str | None:
    """Explain why `procfs` looks like a container's process view, or return None."""
    name = pid1_name(procfs)
    if name is None or name in HOST_INITS:
        return None
    if procfs == DEFAULT_PROCFS:
        fix = (
            "mount the host's /proc (e.g. at /host/proc) and set SYSOPS_PROCFS=/host/proc, "
            "with hostPID: true in Kubernetes"
        )
    else:
        fix = f"{procfs} is not the host's /proc of the initial PID namespace; run with hostPID: true"
    return f"PID 1 under {procfs} is {name!r}, not a host init: processes are a container's view; {fix}"


def _is_veth_peer(sysfs: Path, iface: str) -> bool:
    """Tell whether an interface is one end of a pair whose peer lives in another namespace."""
    base = sysfs / "class" / "net" / iface
    try:
        return (base / "iflink").read_text().strip() != (base / "ifindex").read_text().strip()
    except OSError:
        return False


def network_view_problem(sysfs: Path, net_dir: Path) -> str | None:
    """Explain why `net_dir` looks like a container's own network namespace, or return None."""
    try:
        lines = (net_dir / "dev").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    names = [line.split(":", 1)[0].strip() for line in lines[2:] if ":" in line]
    others = [n for n in names if n != "lo"]
    if len(others) != 1 or not _is_veth_peer(sysfs, others[0]):
        return None
    return (
        f"only lo and {others[0]} (one end of a veth pair) are visible in {net_dir}: interface counters "
        "are a container's; run with hostNetwork: true, or mount the host's /proc, set "
        "SYSOPS_PROCFS=/host/proc with hostPID: true (PID 1's namespace is then read)"
    )


def check_process_view(ctx: CollectorContext) -> str | None:
    """Log one WARNING when the process view is a container's; return the problem."""
    problem = process_view_problem(ctx.procfs)
    if problem is not None:
        _log.warning("%s: %s", ctx.name, problem)
    return problem


def check_network_view(ctx: CollectorContext, net_dir: Path) -> str | None:
    """Log one WARNING when the network view is a container's; return the problem."""
    problem = network_view_problem(ctx.sysfs, net_dir)
    if problem is not None:
        _log.warning("%s: %s", ctx.name, problem)
    return problem
