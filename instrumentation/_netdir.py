"""Which /proc network directory a network-stack collector reads (the same rule as `network`)."""

from __future__ import annotations

from pathlib import Path

from otel_sysops.plugin import CollectorContext

from ._hostview import DEFAULT_PROCFS


def net_dir(ctx: CollectorContext) -> Path:
    """`{procfs}/1/net` (PID 1's namespace) when `procfs` is not /proc or host_netns is set, else /net."""
    cfg = ctx.settings.instrumentation.network
    host_netns = cfg.host_netns if cfg.host_netns is not None else ctx.procfs != DEFAULT_PROCFS
    return ctx.procfs / "1" / "net" if host_netns else ctx.procfs / "net"
