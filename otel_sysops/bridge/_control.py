"""The bridge's control plane: status, inventory, silence and reload requests from the fleet."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from otel_sysops.alerts import SilenceControl

from ._payloads import CONTROL_OPS, AgentView, collector_health, encode, heartbeat_payload, reply

if TYPE_CHECKING:
    from nats.aio.msg import Msg

_log = logging.getLogger("otel_sysops.bridge._service")

# Longest silence accepted over the control plane.
_MAX_SILENCE = 30 * 86400.0


def silence_control(sink: object) -> SilenceControl | None:
    """Return the alert sink as a SilenceControl when it offers silences (the alert manager), else None."""
    needed = ("add_silence", "remove_silence", "silences", "active_alerts")
    if all(callable(getattr(sink, name, None)) for name in needed):
        return cast(SilenceControl, sink)
    return None


class ControlPlane:
    """Answer control requests from what the agent shows (health, alerts, silences, reload)."""

    def __init__(
        self,
        agent: AgentView | None,
        host: str,
        stats: dict[str, int],
        bridge_stats: Callable[[], dict[str, Any]],
        inventory: Callable[[], Awaitable[dict[str, Any]]] | None,
        refuse_changes: str | None = None,
    ) -> None:
        # Why silence and reload requests are refused (an unauthenticated connection), or None.
        self.refuse_changes = refuse_changes
        self.refused = 0
        self.agent = agent
        self.host = host
        self.stats = stats
        self._bridge_stats = bridge_stats
        self._inventory = inventory

    async def handle(self, msg: Msg) -> None:
        """Answer one request on `<prefix>.<host>.control.<op>`."""
        op = msg.subject.rsplit(".", 1)[-1]
        self.stats["control_requests"] += 1
        try:
            request = json.loads(msg.data) if msg.data.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
        except ValueError as exc:
            answer = reply(False, error=f"bad request: {exc}")
        else:
            _log.info("control request %s %s", op, json.dumps(request)[:200])
            mutating = op == "reload" or (op == "silence" and request.get("action", "add") != "list")
            try:
                if mutating and self.refuse_changes is not None:
                    answer = self._refused(op)
                else:
                    answer = await self._dispatch(op, request)
            except (ValueError, TypeError) as exc:
                answer = reply(False, error=str(exc))
            except Exception as exc:  # noqa: BLE001 - a request always gets an answer
                _log.warning("control request %s failed: %s: %s", op, type(exc).__name__, exc)
                answer = reply(False, error=f"{op} failed: {type(exc).__name__}: {exc}")
        if not msg.reply:
            return
        import nats.errors

        try:
            await msg.respond(encode(answer))
        except nats.errors.MaxPayloadError:
            await msg.respond(encode(reply(False, error="reply larger than the server's max_payload")))

    async def _dispatch(self, op: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if op == "status":
            return self.status()
        if op == "inventory":
            if self._inventory is None:
                return reply(False, error="no inventory source")
            return reply(True, inventory=await self._inventory())
        if op == "silence":
            return self._silence(request)
        if op == "reload":
            return self._reload()
        return reply(False, error=f"unknown operation {op!r}; accepted: {', '.join(CONTROL_OPS)}")

    def _refused(self, op: str) -> dict[str, Any]:
        self.refused += 1
        _log.warning("control request %s refused: %s", op, self.refuse_changes)
        return reply(False, error=f"refused: {self.refuse_changes}")

    def _reload(self) -> dict[str, Any]:
        request_reload = getattr(self.agent, "request_reload", None)
        if not callable(request_reload):
            return reply(False, error="this agent cannot reload")
        request_reload()
        return reply(True, reloading=True)

    def status(self) -> dict[str, Any]:
        """Return the `control.status` reply: health, collectors, active alerts and silences."""
        assert self.agent is not None
        health = self.agent.health()
        control = silence_control(self.agent.alerts)
        return reply(
            True,
            host=self.host,
            time=time.time(),
            version=heartbeat_payload(self.agent, self.host, 0, {})["agent"],
            health={"alive": health.alive, "ready": health.ready, "detail": health.detail},
            last_tick=self.agent.pipeline.last_tick,
            collectors=collector_health(self.agent.pipeline),
            silences_supported=control is not None,
            alerts=[a.to_dict() for a in control.active_alerts()] if control else None,
            silences=control.silences() if control else None,
            bridge=self._bridge_stats(),
        )

    def _silence(self, request: Mapping[str, Any]) -> dict[str, Any]:
        assert self.agent is not None
        control = silence_control(self.agent.alerts)
        if control is None:
            return reply(False, error="silences not supported: the agent runs without the alert manager")
        action = request.get("action", "add")
        if action == "list":
            return reply(True, silences=control.silences())
        if action == "remove":
            silence_id = request.get("id")
            if not isinstance(silence_id, str) or not silence_id:
                raise ValueError('remove needs "id": the silence id')
            existed = control.remove_silence(silence_id)
            return reply(existed, id=silence_id, **({} if existed else {"error": "no such silence"}))
        if action != "add":
            raise ValueError(f"unknown action {action!r}; accepted: add, remove, list")
        matchers = request.get("matchers")
        if not isinstance(matchers, dict) or not matchers:
            raise ValueError('add needs "matchers": an object of field or label -> value')
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in matchers.items()):
            raise ValueError("matchers map strings to strings")
        duration = request.get("duration")
        if not isinstance(duration, int | float) or not 0 < duration <= _MAX_SILENCE:
            raise ValueError(f'add needs "duration": seconds, more than 0 and at most {_MAX_SILENCE:.0f}')
        silence_id = control.add_silence(
            matchers,
            float(duration),
            comment=str(request.get("comment", "")),
            created_by=str(request.get("created_by", "nats")),
        )
        return reply(True, id=silence_id)
