"""The hub's REST API, event stream and web UI (Starlette on uvicorn, on the hub's event loop)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from otel_sysops import __version__

from ._auth import ROLES, Authenticator, AuthError, Principal, RateLimiter, digest, new_key, rank
from ._openapi import openapi_document

if TYPE_CHECKING:
    from ._service import Hub

_log = logging.getLogger("otel_sysops.hub.api")

MAX_PAGE = 1000
MAX_BODY = 64 * 1024
_MAX_SILENCE = 30 * 86400.0

HOST_SORTS = ("host", "status", "last_heartbeat", "age_s", "cpu", "memory", "disk", "alerts", "version")
HISTORY_FILTERS = ("host", "severity", "rule", "state", "source", "metric", "fingerprint")
ACTIVE_FILTERS = ("host", "severity", "rule", "source")

Endpoint = Callable[[Request, Principal], Awaitable[Response]]


class ApiError(Exception):
    """A client error: status and message become the JSON answer."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


def _params(request: Request, accepted: tuple[str, ...]) -> dict[str, str]:
    """Return the query parameters; an unknown one or a repeated one is a 400."""
    out: dict[str, str] = {}
    for key in request.query_params:
        if key not in accepted:
            raise ApiError(400, f"unknown parameter {key!r}; accepted: {', '.join(accepted)}")
        values = request.query_params.getlist(key)
        if len(values) > 1:
            raise ApiError(400, f"parameter {key!r} given more than once")
        out[key] = values[0]
    return out


def _int(params: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{key}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{key}: must be between {low} and {high}")
    return value


def _time(params: dict[str, str], key: str) -> float | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, f"{key}: expected seconds since the epoch, got {raw!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"{key}: must be finite")
    return value


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, f"request body larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(body or b"{}")
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "expected a JSON object")
    return doc


class Api:
    """The routes; each declares the role it needs."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.auth = Authenticator(hub.cfg, hub.store)
        self.limiter = RateLimiter(hub.cfg.rate_limit, hub.cfg.rate_burst)
        self.requests = 0

    def guard(self, role: str, endpoint: Endpoint, *, token_in_query: bool = False) -> Callable[..., Any]:
        """Wrap an endpoint: authenticate, check the role, rate-limit, turn errors into JSON."""

        async def handler(request: Request) -> Response:
            self.requests += 1
            try:
                token = self._token(request, token_in_query)
                if self.auth.may_fetch(token):
                    # A key set not cached yet is fetched over HTTP: off the event loop.
                    principal = await anyio.to_thread.run_sync(self._principal, token)
                else:
                    principal = self._principal(token)
                who = principal.name if principal.via != "anonymous" else f"ip:{_client(request)}"
                wait = self.limiter.allow(who)
                if wait > 0:
                    raise ApiError(429, "rate limit exceeded", {"Retry-After": str(math.ceil(wait))})
                if rank(principal.role) < rank(role):
                    if principal.via == "anonymous":
                        raise ApiError(401, f"this call needs a {role} API key or token", _challenge())
                    raise ApiError(
                        403, f"this call needs the {role} role; {principal.name} is {principal.role}"
                    )
                return await endpoint(request, principal)
            except ApiError as exc:
                return _error(exc.status, exc.message, exc.headers)

        return handler

    @staticmethod
    def _token(request: Request, token_in_query: bool) -> str:
        """Return the caller's key or token ("" when none was sent)."""
        header = request.headers.get("authorization", "")
        token = ""
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise ApiError(401, "Authorization: expected 'Bearer <key or token>'", _challenge())
            token = value.strip()
        token = token or request.headers.get("x-api-key", "")
        if not token and token_in_query:
            token = request.query_params.get("token", "")
        return token

    def _principal(self, token: str) -> Principal:
        if not token:
            anonymous = self.auth.anonymous()
            if anonymous is None:
                raise ApiError(401, "an API key or token is required", _challenge())
            return anonymous
        try:
            return self.auth.authenticate(token)
        except AuthError as exc:
            raise ApiError(401, str(exc), _challenge()) from None

    # -- hosts ----------------------------------------------------------------------------------

    async def hosts(self, request: Request, _: Principal) -> Response:
        params = _params(request, ("status", "q", "sort", "order", "limit", "offset"))
        # Rows are shared for half a second between concurrent readers.
        rows = self.hub.state.host_rows(max_age=0.5)
        status = params.get("status")
        if status is not None and status not in ("up", "down"):
            raise ApiError(400, "status: expected up or down")
        if status:
            rows = [r for r in rows if r["status"] == status]
        if q := params.get("q", "").lower():
            rows = [r for r in rows if q in r["host"].lower()]
        sort = params.get("sort", "host")
        if sort not in HOST_SORTS:
            raise ApiError(400, f"sort: unknown {sort!r}; accepted: {', '.join(HOST_SORTS)}")
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "order: expected asc or desc")
        rows.sort(key=lambda r: _sort_key(r, sort), reverse=order == "desc")
        limit = _int(params, "limit", MAX_PAGE, 1, MAX_PAGE * 10)
        offset = _int(params, "offset", 0, 0, 10_000_000)
        return JSONResponse(
            {
                "total": len(rows),
                "down": sum(1 for r in rows if r["status"] == "down"),
                "hosts": rows[offset : offset + limit],
            }
        )

    async def host(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        name = request.path_params["host"]
        detail = self.hub.state.host_detail(name)
        if detail is None:
            raise ApiError(404, f"unknown host {name!r}")
        template = self.hub.cfg.grafana_url_template
        detail["grafana_url"] = template.replace("{host}", name) if template else None
        return JSONResponse(detail)

    async def inventory(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        name = request.path_params["host"]
        doc = await anyio.to_thread.run_sync(self.hub.store.inventory, name)
        if doc is None:
            raise ApiError(404, f"no inventory for {name!r}")
        return JSONResponse({"host": name, **doc})

    async def inventory_changes(self, request: Request, _: Principal) -> Response:
        params = _params(request, ("host", "limit", "offset"))
        host = request.path_params.get("host") or params.get("host")
        limit = _int(params, "limit", 100, 1, MAX_PAGE)
        offset = _int(params, "offset", 0, 0, 10_000_000)
        changes = await anyio.to_thread.run_sync(self.hub.store.inventory_changes, host, limit, offset)
        return JSONResponse({"changes": changes})

    async def series(self, request: Request, _: Principal) -> Response:
        params = _params(request, ("metric", "since", "step"))
        name = request.path_params["host"]
        from ._charts import fetch_series, metric_error

        metric = params.get("metric", "")
        if (error := metric_error(self.hub.cfg, metric)) is not None:
            raise ApiError(400, error)
        since = _int(params, "since", 3600, 60, 30 * 86400)
        step = _int(params, "step", max(15, since // 240), 1, 86400)

        answer = await fetch_series(self.hub.cfg, name, metric, since, step)
        return JSONResponse(answer, status_code=200 if answer.get("ok") else 502)

    # -- alerts ---------------------------------------------------------------------------------

    async def alerts(self, request: Request, _: Principal) -> Response:
        params = _params(request, ACTIVE_FILTERS)
        alerts = self.hub.state.active_alerts()
        for key, value in params.items():
            alerts = [a for a in alerts if str(a.get(key)) == value]
        return JSONResponse({"alerts": alerts, "total": len(alerts)})

    async def history(self, request: Request, _: Principal) -> Response:
        params = _params(request, (*HISTORY_FILTERS, "since", "until", "limit", "offset"))
        filters = {k: v for k, v in params.items() if k in HISTORY_FILTERS}
        if "state" in filters and filters["state"] not in ("firing", "resolved"):
            raise ApiError(400, "state: expected firing or resolved")
        since, until = _time(params, "since"), _time(params, "until")
        limit = _int(params, "limit", 100, 1, MAX_PAGE)
        offset = _int(params, "offset", 0, 0, 10_000_000)
        total, alerts = await anyio.to_thread.run_sync(
            self.hub.store.alert_history, filters, since, until, limit, offset
        )
        return JSONResponse({"total": total, "limit": limit, "offset": offset, "alerts": alerts})

    # -- silences -------------------------------------------------------------------------------

    async def silences(self, request: Request, _: Principal) -> Response:
        params = _params(request, ("host",))
        host = params.get("host")
        if not host:
            raise ApiError(400, "host: required (silences live on each agent)")
        answer = await self.hub.control(host, "silence", {"action": "list"})
        return JSONResponse({"host": host, **answer}, status_code=200 if answer.get("ok") else 502)

    async def add_silence(self, request: Request, who: Principal) -> Response:
        _params(request, ())
        body = await _json_body(request)
        unknown = set(body) - {"hosts", "matchers", "duration", "comment"}
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(sorted(unknown))}")
        hosts = body.get("hosts")
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and h for h in hosts):
            raise ApiError(400, "hosts: a non-empty list of host names")
        if len(hosts) > 10_000:
            raise ApiError(400, "hosts: at most 10000")
        matchers = body.get("matchers")
        if not isinstance(matchers, dict) or not matchers:
            raise ApiError(400, "matchers: an object of alert field or label -> value")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in matchers.items()):
            raise ApiError(400, "matchers: map strings to strings")
        duration = body.get("duration")
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not 0 < duration <= _MAX_SILENCE
        ):
            raise ApiError(400, f"duration: seconds, more than 0 and at most {_MAX_SILENCE:.0f}")
        comment = body.get("comment", "")
        if not isinstance(comment, str):
            raise ApiError(400, "comment: a string")
        request_doc = {
            "action": "add",
            "matchers": matchers,
            "duration": float(duration),
            "comment": comment,
            "created_by": who.name,
        }
        replies: dict[str, Any] = {}

        async def one(host: str) -> None:
            replies[host] = await self.hub.control(host, "silence", request_doc)

        async with anyio.create_task_group() as tg:
            for host in dict.fromkeys(hosts):
                tg.start_soon(one, host)
        await anyio.to_thread.run_sync(self.hub.store.record_silence, who.name, hosts, request_doc, replies)
        ok = all(r.get("ok") for r in replies.values())
        self.hub.events.publish({"type": "silence", "hosts": hosts, "ok": ok})
        return JSONResponse({"ok": ok, "replies": replies}, status_code=200 if ok else 502)

    async def remove_silence(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        host, silence_id = request.path_params["host"], request.path_params["id"]
        answer = await self.hub.control(host, "silence", {"action": "remove", "id": silence_id})
        return JSONResponse(answer, status_code=200 if answer.get("ok") else 404)

    async def silence_log(self, request: Request, _: Principal) -> Response:
        params = _params(request, ("limit",))
        limit = _int(params, "limit", 100, 1, MAX_PAGE)
        return JSONResponse({"silences": await anyio.to_thread.run_sync(self.hub.store.silence_log, limit)})

    # -- keys -----------------------------------------------------------------------------------

    async def keys(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        return JSONResponse({"keys": await anyio.to_thread.run_sync(self.hub.store.list_keys)})

    async def add_key(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        body = await _json_body(request)
        name, role = body.get("name"), body.get("role", "viewer")
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ApiError(400, "name: a string of 1 to 100 characters")
        if role not in ROLES:
            raise ApiError(400, f"role: one of {', '.join(ROLES)}")
        key_id, key = new_key()
        try:
            await anyio.to_thread.run_sync(self.hub.store.add_key, key_id, name, role, digest(key))
        except Exception as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise ApiError(409, f"a key named {name!r} exists") from None
            raise
        return JSONResponse({"id": key_id, "name": name, "role": role, "key": key}, status_code=201)

    async def remove_key(self, request: Request, _: Principal) -> Response:
        _params(request, ())
        name = request.path_params["name"]
        if not await anyio.to_thread.run_sync(self.hub.store.remove_key, name):
            raise ApiError(404, f"no key named {name!r}")
        return JSONResponse({"ok": True, "name": name})

    # -- the hub itself -------------------------------------------------------------------------

    async def status(self, request: Request, who: Principal) -> Response:
        from ._charts import chart_metrics

        _params(request, ())
        hub = self.hub
        with hub.state.lock:
            hosts, down = len(hub.state.hosts), sum(1 for h in hub.state.hosts.values() if h.down)
            counts = dict(hub.state.counts)
        return JSONResponse(
            {
                "version": __version__,
                "started_at": hub.started,
                "uptime_s": time.time() - hub.started,
                "nats": {"url": hub.nats_url, "connected": bool(hub.nc and hub.nc.is_connected)},
                "caught_up": all(hub.caught_up.values()),
                "database": {"dialect": hub.store.dialect, "schema_version": hub.store.schema_version()},
                "hosts": hosts,
                "down": down,
                "active_alerts": len(hub.state.active),
                "counts": counts,
                "events_dropped": hub.events.dropped,
                "requests": self.requests,
                "you": {"name": who.name, "role": who.role, "via": who.via},
                "ui": {
                    "grafana_url_template": hub.cfg.grafana_url_template,
                    "charts": "prometheus" if hub.cfg.prometheus_url else "agent",
                    "chart_metrics": list(chart_metrics(hub.cfg)),
                },
            }
        )

    async def events(self, request: Request, _: Principal) -> Response:
        _params(request, ("token",))
        return StreamingResponse(
            self.hub.events.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def openapi(self, request: Request, _: Principal) -> Response:
        return JSONResponse(openapi_document(__version__))


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="otel-sysops hub"'}


def _sort_key(row: dict[str, Any], sort: str) -> Any:
    if sort in ("cpu", "memory", "disk"):
        value = row["summary"].get(sort)
        return (value is None, value if value is not None else 0.0, row["host"])
    if sort == "alerts":
        counts = row["alerts"]
        return (counts["emergency"], counts["critical"], counts["warning"], counts["info"], row["host"])
    value = row.get(sort)
    return (value is None, value if value is not None else "", row["host"])


def _static(name: str) -> Callable[[Request], Awaitable[Response]]:
    path = resources.files("otel_sysops.hub").joinpath("static", name)

    async def handler(_: Request) -> Response:
        return FileResponse(str(path), headers={"Cache-Control": "no-cache"})

    return handler


def build_app(hub: Hub) -> tuple[Starlette, Api]:
    """Return the ASGI application and its routes' owner."""
    api = Api(hub)
    v1 = "/api/v1"
    routes = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route(f"{v1}/openapi.json", api.guard("viewer", api.openapi), methods=["GET"]),
        Route(f"{v1}/status", api.guard("viewer", api.status), methods=["GET"]),
        Route(f"{v1}/hosts", api.guard("viewer", api.hosts), methods=["GET"]),
        Route(f"{v1}/hosts/{{host}}", api.guard("viewer", api.host), methods=["GET"]),
        Route(f"{v1}/hosts/{{host}}/inventory", api.guard("viewer", api.inventory), methods=["GET"]),
        Route(
            f"{v1}/hosts/{{host}}/inventory/changes",
            api.guard("viewer", api.inventory_changes),
            methods=["GET"],
        ),
        Route(f"{v1}/hosts/{{host}}/series", api.guard("viewer", api.series), methods=["GET"]),
        Route(f"{v1}/inventory/changes", api.guard("viewer", api.inventory_changes), methods=["GET"]),
        Route(f"{v1}/alerts", api.guard("viewer", api.alerts), methods=["GET"]),
        Route(f"{v1}/alerts/history", api.guard("viewer", api.history), methods=["GET"]),
        Route(f"{v1}/silences", api.guard("viewer", api.silences), methods=["GET"]),
        Route(f"{v1}/silences", api.guard("operator", api.add_silence), methods=["POST"]),
        Route(f"{v1}/silences/log", api.guard("viewer", api.silence_log), methods=["GET"]),
        Route(
            f"{v1}/silences/{{host}}/{{id}}", api.guard("operator", api.remove_silence), methods=["DELETE"]
        ),
        Route(f"{v1}/keys", api.guard("admin", api.keys), methods=["GET"]),
        Route(f"{v1}/keys", api.guard("admin", api.add_key), methods=["POST"]),
        Route(f"{v1}/keys/{{name}}", api.guard("admin", api.remove_key), methods=["DELETE"]),
        Route(f"{v1}/events", api.guard("viewer", api.events, token_in_query=True), methods=["GET"]),
        Route("/", _static("index.html"), methods=["GET"]),
        Route("/app.js", _static("app.js"), methods=["GET"]),
        Route("/style.css", _static("style.css"), methods=["GET"]),
    ]

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return _error(500, f"internal error: {type(exc).__name__}")

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    return app, api


async def _healthz(_: Request) -> Response:
    return JSONResponse({"ok": True})


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the hub (or the test) owns the process's signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    hub: Hub, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
) -> None:
    """Bind the listener, serve until cancelled; report the bound address."""
    from otel_sysops.errors import ConfigError

    app, api = build_app(hub)
    hub.api = api
    family = socket.AF_INET6 if ":" in hub.cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((hub.cfg.host, hub.cfg.port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"hub.port: cannot listen on {hub.cfg.host}:{hub.cfg.port} ({exc.strerror})"
        ) from exc
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        limit_concurrency=1000,
    )
    server = _Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:
            await anyio.sleep(0.01)
        address = sock.getsockname()
        task_status.started((str(address[0]), int(address[1])))
        try:
            await anyio.sleep_forever()
        finally:
            server.should_exit = True
            hub.events.close()
