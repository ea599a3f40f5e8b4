"""The NATS fleet bridge: alerts, inventory and heartbeats out, control requests in; the fleet view.

nats-py is imported only when a connection is made, so an agent without NATS never loads it.
"""

from ._connect import NatsError, connect, connect_options
from ._control import ControlPlane, silence_control
from ._fleet import FleetView, watch_fleet
from ._outbox import Message, Outbox
from ._payloads import SCHEMA_VERSION, AgentView, Subjects, alert_payload, heartbeat_payload, host_token
from ._service import NatsAlertChannel, NatsBridge

__all__ = [
    "SCHEMA_VERSION",
    "AgentView",
    "ControlPlane",
    "FleetView",
    "Message",
    "NatsAlertChannel",
    "NatsBridge",
    "NatsError",
    "Outbox",
    "Subjects",
    "alert_payload",
    "connect",
    "connect_options",
    "heartbeat_payload",
    "host_token",
    "silence_control",
    "watch_fleet",
]
