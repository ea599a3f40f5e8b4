"""The heartbeat's CPU/memory/disk summary (the hub's fleet table columns) from a real collection."""

from __future__ import annotations

from collections.abc import Callable

from otel_sysops.agent import Agent
from otel_sysops.bridge import NatsBridge, heartbeat_payload
from otel_sysops.bridge._summary import heartbeat_summary
from otel_sysops.settings import Settings
from tests.bridge.support import validate


def test_summary_of_a_real_collection_fits_the_schema(make_settings: Callable[..., Settings]) -> None:
    agent = Agent(make_settings(hostname="node-1"))
    assert heartbeat_summary(agent.pipeline) == {}
    agent.pipeline.tick()
    agent.pipeline.tick()
    summary = heartbeat_summary(agent.pipeline)
    assert {"memory", "disk"} <= set(summary)
    assert all(0.0 <= v <= 1.0 for v in summary.values())
    bridge = NatsBridge(agent.settings.nats, "node-1", agent)
    doc = heartbeat_payload(agent, "node-1", 10.0, bridge.bridge_stats())
    assert doc["summary"].keys() == summary.keys()
    validate(doc, "heartbeat")
