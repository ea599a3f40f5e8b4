"""The fleet hub (`otel-sysops hub`, extra `otel-sysops[hub]`): every agent's heartbeats, alerts and
inventory from NATS JetStream into SQLite or PostgreSQL, served as a REST API and a web UI.

Nothing in the agent imports this package.
"""

from ._auth import digest, new_key
from ._service import Hub
from ._state import DOWN_RULE, FleetState
from ._store import Store

__all__ = ["DOWN_RULE", "FleetState", "Hub", "Store", "digest", "new_key"]
