"""The JSON API under /api/v1/: routes, parameter checks, the token, and JSON errors for bad input."""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from otel_sysops import __version__
from otel_sysops.alerts import Alert, Severity
from otel_sysops.http import Request, Response, error_response, json_response
from otel_sysops.settings import ApiSettings

from ._events import EventHub, StreamFull
from ._history import AlertHistory, HistoryQuery
from ._parts import AlertsView, ApiParts
from ._views import CHARTS, Matcher, Query, anomalies, lines_json, parse_time, select, summary

PREFIX = "/api/v1/"
# Longest silence accepted through the API.
MAX_SILENCE = 366 * 86400.0


class BadRequest(Exception):  # noqa: N818 - mapped to an HTTP status, not raised to callers
    """Bad input: answered with `status` and a JSON error naming the parameter."""

    def __init__(self, message: str, status: int = 400, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class _Route:
    params: tuple[str, ...]
    handler: Callable[[Request, dict[str, list[str]]], Response]
    mutating: bool = False


class ApiRoutes:
    """Serve /api/v1/*: a `Handler` (call it with a `Request`)."""

    def __init__(
        self,
        parts: ApiParts,
        settings: ApiSettings,
        token: str | None,
        history: AlertHistory | None,
        events: EventHub,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.parts = parts
        self.settings = settings
        self.token = token
        self.history = history
        self.events = events
        self.clock = clock
        self._inventory: tuple[float, Mapping[str, Any]] | None = None
        self._inventory_lock = threading.Lock()
        self._routes: dict[tuple[str, str], _Route] = {
            ("GET", "status"): _Route((), self._status),
            ("GET", "alerts"): _Route((), self._alerts),
            ("GET", "alerts/history"): _Route(
                ("since", "until", "severity", "rule", "state", "match", "limit", "offset"), self._history
            ),
            ("GET", "silences"): _Route((), self._silences),
            ("POST", "silences"): _Route((), self._add_silence, mutating=True),
            ("GET", "series"): _Route(("metric", "match", "since", "rate", "sum_by"), self._series),
            ("GET", "charts"): _Route((), self._charts),
            ("GET", "summary"): _Route(("top",), self._summary),
            ("GET", "anomalies"): _Route(("limit", "min_score"), self._anomalies),
            ("GET", "inventory"): _Route(("refresh",), self._inventory_route),
            ("GET", "events"): _Route(("access_token",), self._events),
        }

    # -- dispatch ----------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        """Answer one request; bad input is a 4xx with {"error": ...}, never a traceback."""
        try:
            return self._dispatch(request)
        except BadRequest as exc:
            response = error_response(exc.status, str(exc))
            response.headers = exc.headers
            return response

    def _dispatch(self, request: Request) -> Response:
        sub = request.path.removeprefix(PREFIX).strip("/")
        method = request.method
        if sub.startswith("silences/") and sub.count("/") == 1:
            if method != "DELETE":
                raise BadRequest(f"{method} {request.path}: only DELETE", 405, {"Allow": "DELETE"})
            self._authorize(request, mutating=True)
            return self._remove_silence(sub.split("/", 1)[1])
        route = self._routes.get((method, sub))
        if route is None:
            allowed = sorted(m for m, s in self._routes if s == sub)
            if allowed:
                raise BadRequest(
                    f"{method} {request.path}: use {', '.join(allowed)}", 405, {"Allow": ", ".join(allowed)}
                )
            known = ", ".join(sorted({PREFIX + s for _, s in self._routes}))
            raise BadRequest(f"no such route {request.path}; routes: {known}", 404)
        self._authorize(request, route.mutating)
        query = dict(request.query.items())
        unknown = sorted(set(query) - set(route.params))
        if unknown:
            accepted = ", ".join(route.params) or "none"
            raise BadRequest(f"unknown parameter {unknown[0]!r} for {request.path}; accepted: {accepted}")
        return route.handler(request, query)

    def _authorize(self, request: Request, mutating: bool) -> None:
        given = _bearer(request)
        if mutating:
            if self.token is None:
                raise BadRequest(
                    "changes through the API are off: set api.token (or SYSOPS_API__TOKEN_FILE)", 403
                )
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                raise BadRequest("this call needs the API token (Authorization: Bearer ...)", 401, _CHALLENGE)
            return
        access = self.settings.read_access
        if access == "anyone" or (access == "loopback" and _is_loopback(request.client)):
            return
        if (
            self.token is not None
            and given is not None
            and hmac.compare_digest(given.encode(), self.token.encode())
        ):
            return
        raise BadRequest(
            "reading needs the API token from this address (Authorization: Bearer ...)", 401, _CHALLENGE
        )

    # -- routes -----------------------------------------------------------------------------

    def _status(self, _: Request, __: dict[str, list[str]]) -> Response:
        now = self.clock()
        pipeline = self.parts.pipeline()
        result = pipeline.last_result
        failed = dict(result.failed) if result is not None else {}
        errors: dict[str, dict[str, int]] = {}
        for (plugin, kind), n in pipeline.errors.snapshot().items():
            errors.setdefault(plugin, {})[kind] = n
        store = pipeline.store
        sinks = {}
        for sink in pipeline.sinks:
            sinks[sink.name] = {"failures": sink.failures(), "dropped": int(getattr(sink, "dropped", 0))}
        doc: dict[str, Any] = {
            "version": __version__,
            "host": self.parts.host,
            "started_at": self.parts.started,
            "uptime": now - self.parts.started,
            "interval": store.interval,
            "last_tick": pipeline.last_tick,
            "last_tick_age": None if pipeline.last_tick is None else now - pipeline.last_tick,
            "tick_duration": None if result is None else result.duration,
            "collectors": {
                name: {
                    "ok": name not in failed,
                    "last_error": failed.get(name),
                    "errors": errors.get(name, {}),
                }
                for name in sorted(pipeline.collectors)
            },
            "analyzers": {name: {"errors": errors.get(name, {})} for name in sorted(pipeline.analyzers)},
            "sinks": sinks,
            "dropped": {
                "store_series_refused": int(getattr(store, "refused", 0)),
                "history_changes": 0 if self.history is None else self.history.dropped + self.history.lost,
                "event_clients": self.events.dropped_clients,
            },
            "api": {
                "event_clients": self.events.clients(),
                "history": None
                if self.history is None
                else {
                    "path": str(self.history.path) if self.history.path else None,
                    "written": self.history.written,
                    "pending": self.history.pending(),
                    "failures": self.history.failures,
                },
            },
        }
        alerts = self.parts.alerts
        if alerts is not None:
            doc["alerts"] = {
                "active": len(alerts.active_alerts()),
                "silences": len(alerts.silences()),
                "counts": alerts.counts_snapshot(),
            }
        return json_response(200, doc)

    def _manager(self) -> AlertsView:
        if self.parts.alerts is None:
            raise BadRequest("alerting is off in this agent (alerts.enabled = false)", 503)
        return self.parts.alerts

    def _alerts(self, _: Request, __: dict[str, list[str]]) -> Response:
        manager = self._manager()
        silences = manager.silences()
        out = []
        for alert in sorted(manager.active_alerts(), key=lambda a: (-int(a.severity), a.starts_at)):
            doc = alert.to_dict()
            doc["silenced_by"] = next((s["id"] for s in silences if _silences(s["matchers"], alert)), None)
            out.append(doc)
        return json_response(200, {"alerts": out})

    def _history(self, _: Request, query: dict[str, list[str]]) -> Response:
        if self.history is None:
            raise BadRequest("alerting is off in this agent: there is no alert history", 503)
        now = self.clock()
        q = HistoryQuery(
            since=_time(query, "since", now),
            until=_time(query, "until", now),
            severities=tuple(_severity(v) for v in _split(query.get("severity", []))),
            rules=tuple(_split(query.get("rule", []))),
            state=_choice(query, "state", ("firing", "resolved")),
            matchers=_matchers(query.get("match", [])),
            limit=_int(query, "limit", 100, 1, self.settings.max_page_size),
            offset=_int(query, "offset", 0, 0, 10**9),
        )
        # Read every change submitted before this request (the writer gathers for a moment).
        self.history.flush(2.0)
        return json_response(200, self.history.query(q))

    def _silences(self, _: Request, __: dict[str, list[str]]) -> Response:
        return json_response(200, {"silences": self._manager().silences()})

    def _add_silence(self, request: Request, _: dict[str, list[str]]) -> Response:
        manager = self._manager()
        body = _json_object(request.body)
        allowed = {"matchers", "duration", "comment", "created_by"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}")
        matchers = body.get("matchers")
        if (
            not isinstance(matchers, dict)
            or not matchers
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in matchers.items())
        ):
            raise BadRequest('matchers: expected a non-empty object of strings, e.g. {"rule": "cpu.high"}')
        duration = _duration(body.get("duration"))
        comment, created_by = body.get("comment", ""), body.get("created_by", "")
        if not isinstance(comment, str) or not isinstance(created_by, str):
            raise BadRequest("comment and created_by: expected strings")
        silence_id = manager.add_silence(matchers, duration, comment[:1000], created_by[:200] or "api")
        silence = next((s for s in manager.silences() if s["id"] == silence_id), {"id": silence_id})
        return json_response(201, silence)

    def _remove_silence(self, silence_id: str) -> Response:
        if not self._manager().remove_silence(silence_id):
            raise BadRequest(f"no silence {silence_id!r}", 404)
        return json_response(200, {"removed": silence_id})

    def _series(self, _: Request, query: dict[str, list[str]]) -> Response:
        metric = _one(query, "metric")
        if not metric:
            raise BadRequest("metric: required, e.g. ?metric=system.cpu.utilization")
        try:
            matchers = tuple(Matcher.parse(m) for m in query.get("match", []))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        sum_by_text = _one(query, "sum_by")
        sum_by = None if sum_by_text is None else tuple(s for s in sum_by_text.split(",") if s)
        now = self.clock()
        since = _time(query, "since", now)
        q = Query(metric, matchers, _bool(query, "rate"), sum_by)
        lines = select(self.parts.pipeline().store, q, now - 900.0 if since is None else since, now)
        return json_response(200, lines_json(q, lines))

    def _charts(self, _: Request, __: dict[str, list[str]]) -> Response:
        return json_response(200, {"charts": [c.to_dict() for c in CHARTS]})

    def _summary(self, _: Request, query: dict[str, list[str]]) -> Response:
        top = _int(query, "top", 8, 0, 100)
        return json_response(200, summary(self.parts.pipeline().store, self.clock(), top))

    def _anomalies(self, _: Request, query: dict[str, list[str]]) -> Response:
        limit = _int(query, "limit", 20, 1, 500)
        min_score = _float(query, "min_score", 0.5, 0.0, 1.0)
        found = anomalies(self.parts.pipeline().store, limit, min_score)
        return json_response(200, {"min_score": min_score, "anomalies": found})

    def _inventory_route(self, _: Request, query: dict[str, list[str]]) -> Response:
        provider = self.parts.inventory
        if provider is None:
            raise BadRequest("no inventory in this agent", 503)
        refresh = _bool(query, "refresh")
        now = time.monotonic()
        with self._inventory_lock:
            cached = self._inventory
            if refresh or cached is None or now - cached[0] > self.parts.inventory_ttl:
                cached = self._inventory = (now, provider())
        return json_response(200, cached[1])

    def _events(self, _: Request, __: dict[str, list[str]]) -> Response:
        try:
            stream = self.events.subscribe()
        except StreamFull as exc:
            raise BadRequest(str(exc), 503, {"Retry-After": "30"}) from None
        return Response(200, stream, "text/event-stream", {"X-Accel-Buffering": "no"})


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="otel-sysops"'}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    # EventSource cannot send headers: the stream accepts the token as a parameter.
    if request.path.endswith("/events"):
        given = request.query.get("access_token")
        if given and given[-1]:
            return given[-1]
    return None


def _is_loopback(client: str) -> bool:
    try:
        address = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def _silences(matchers: Mapping[str, str], alert: Alert) -> bool:
    """Return whether a silence's matchers cover the alert (as the alert manager matches them)."""
    fields = {**alert.attributes, **alert.labels}
    for name in ("rule", "metric", "host", "fingerprint", "state"):
        fields[name] = str(getattr(alert, name))
    fields["severity"] = alert.severity.name.lower()
    return all(k in fields and fnmatchcase(fields[k], v) for k, v in matchers.items())


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times; give it once")
    return values[0]


def _split(values: list[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _int(query: Mapping[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    text = _one(query, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name}: expected an integer, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is out of range; accepted: {low} to {high}")
    return value


def _float(query: Mapping[str, list[str]], name: str, default: float, low: float, high: float) -> float:
    text = _one(query, name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"{name}: expected a number, got {text[:40]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}: {value} is out of range; accepted: {low} to {high}")
    return value


def _bool(query: Mapping[str, list[str]], name: str) -> bool:
    text = _one(query, name)
    if text is None:
        return False
    lowered = text.lower()
    if lowered in ("", "1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise BadRequest(f"{name}: expected true or false, got {text[:40]!r}")


def _choice(query: Mapping[str, list[str]], name: str, accepted: tuple[str, ...]) -> str | None:
    text = _one(query, name)
    if text is None:
        return None
    if text not in accepted:
        raise BadRequest(f"{name}: {text[:40]!r} is not accepted; accepted: {', '.join(accepted)}")
    return text


def _time(query: Mapping[str, list[str]], name: str, now: float) -> float | None:
    text = _one(query, name)
    if text is None:
        return None
    try:
        return parse_time(text, now)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _severity(text: str) -> Severity:
    try:
        return Severity.parse(text)
    except ValueError as exc:
        raise BadRequest(f"severity: {exc}") from None


def _matchers(values: list[str]) -> dict[str, str]:
    out = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key or key.endswith("!"):
            raise BadRequest(f"match {text[:60]!r}: expected KEY=VALUE (e.g. match=system.device=sda)")
        out[key] = value
    return out


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    return doc


def _duration(value: object) -> float:
    if isinstance(value, bool) or value is None:
        raise BadRequest('duration: required, seconds or a duration such as "2h"')
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = 0.0 - parse_time(value, 0.0) if value.strip()[-1:].isalpha() else float(value)
        except ValueError:
            raise BadRequest(f"duration: {value[:40]!r}: expected seconds or 30s, 15m, 2h, 7d") from None
    else:
        raise BadRequest('duration: expected seconds or a duration such as "2h"')
    if not 0 < seconds <= MAX_SILENCE:
        raise BadRequest(f"duration: {seconds:g}s is out of range; accepted: more than 0, at most 366d")
    return seconds
