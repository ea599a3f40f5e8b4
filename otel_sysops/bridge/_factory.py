"""The service factory `otel-sysops run` uses: a NatsBridge when NATS is configured."""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from otel_sysops.inventory import Roots, collect_inventory
from otel_sysops.resource import host_name

from ._service import NatsBridge

if TYPE_CHECKING:
    from otel_sysops.agent import Agent

_log = logging.getLogger(__name__)


def nats_service(agent: Agent) -> NatsBridge | None:
    """Return the bridge for the agent's settings, or None when NATS is off.

    The bridge's alert channel is handed to the alert sink when it takes channels
    (`add_channel`, the alert manager); the plain log sink does not, and alerts then stay local.
    """
    settings = agent.settings
    if not settings.nats.active:
        return None
    host = host_name(settings)
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    bridge = NatsBridge(
        settings.nats, host, agent, inventory=functools.partial(collect_inventory, roots, host)
    )
    agent.add_pipeline_hook(lambda pipeline: bridge.register_metrics(pipeline.meter("otel_sysops.bridge")))
    add_channel = getattr(agent.alerts, "add_channel", None)
    if callable(add_channel):
        add_channel(bridge.channel)
    else:
        _log.info("the alert sink takes no channels: alerts are not published on %s", bridge.subjects.alerts)
    return bridge
