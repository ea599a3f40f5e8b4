"""The OpenAPI 3.1 document of the hub's API (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any


def _q(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def _p(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


_PAGE = [_q("limit", "page size, at most 1000", "integer"), _q("offset", "rows to skip", "integer")]
_ERR = {
    "description": "error",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _op(
    summary: str, role: str, params: list[dict[str, Any]] | None = None, body: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": f"Needs the {role} role.",
        "parameters": params or [],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": _ERR,
            "401": _ERR,
            "403": _ERR,
            "429": _ERR,
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if role != "viewer":
        op["security"] = [{"bearer": []}, {"apiKey": []}]
    return op


def openapi_document(version: str) -> dict[str, Any]:
    """Return the document."""
    filters = [
        _q("host", "host name"),
        _q("severity", "info, warning, critical or emergency"),
        _q("rule", "rule name"),
        _q("source", "agent or hub"),
    ]
    return {
        "openapi": "3.1.0",
        "info": {"title": "otel-sysops hub", "version": version},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API key or JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                    "required": ["error", "status"],
                }
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}, {}],
        "paths": {
            "/api/v1/status": {"get": _op("The hub's own state", "viewer")},
            "/api/v1/hosts": {
                "get": _op(
                    "Every host: status, last heartbeat, summary, active alerts by severity",
                    "viewer",
                    [
                        _q("status", "up or down"),
                        _q("q", "substring of the host name"),
                        _q("sort", "host, status, last_heartbeat, age_s, cpu, memory, disk, alerts, version"),
                        _q("order", "asc or desc"),
                        *_PAGE,
                    ],
                )
            },
            "/api/v1/hosts/{host}": {"get": _op("One host with its last heartbeat", "viewer", [_p("host")])},
            "/api/v1/hosts/{host}/inventory": {
                "get": _op("The host's latest inventory", "viewer", [_p("host")])
            },
            "/api/v1/hosts/{host}/inventory/changes": {
                "get": _op("The host's inventory changes", "viewer", [_p("host"), *_PAGE])
            },
            "/api/v1/hosts/{host}/series": {
                "get": _op(
                    "Chart data from Prometheus or the agent",
                    "viewer",
                    [_p("host"), _q("metric", "metric name"), _q("since", "seconds back", "integer")],
                )
            },
            "/api/v1/inventory/changes": {
                "get": _op("Inventory changes across the fleet", "viewer", [_q("host", "host name"), *_PAGE])
            },
            "/api/v1/alerts": {"get": _op("Alerts firing now", "viewer", filters)},
            "/api/v1/alerts/history": {
                "get": _op(
                    "Alert history, newest first",
                    "viewer",
                    [
                        *filters,
                        _q("state", "firing or resolved"),
                        _q("metric", "metric name"),
                        _q("fingerprint", "alert fingerprint"),
                        _q("since", "seconds since the epoch", "number"),
                        _q("until", "seconds since the epoch", "number"),
                        *_PAGE,
                    ],
                )
            },
            "/api/v1/silences": {
                "get": _op("A host's silences (asked of its agent)", "viewer", [_q("host", "host name")]),
                "post": _op(
                    "Add a silence on each host's agent: {hosts, matchers, duration, comment}",
                    "operator",
                    body=True,
                ),
            },
            "/api/v1/silences/log": {
                "get": _op("Silence requests forwarded by the hub", "viewer", _PAGE[:1])
            },
            "/api/v1/silences/{host}/{id}": {
                "delete": _op("Remove a silence from a host's agent", "operator", [_p("host"), _p("id")])
            },
            "/api/v1/keys": {
                "get": _op("API keys (never their secrets)", "admin"),
                "post": _op("Create an API key: {name, role}; the key is shown once", "admin", body=True),
            },
            "/api/v1/keys/{name}": {"delete": _op("Delete an API key", "admin", [_p("name")])},
            "/api/v1/events": {
                "get": {
                    **_op("Server-Sent Events: host, alert, inventory, silence, fleet", "viewer"),
                    "responses": {"200": {"description": "text/event-stream"}},
                }
            },
        },
    }
