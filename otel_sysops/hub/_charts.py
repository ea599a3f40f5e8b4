"""Chart data for the host page: from Prometheus (`hub.prometheus_url`) or else the agent's own API."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import httpx

from otel_sysops.settings import HubSettings

_TIMEOUT = 5.0
_DEFAULT_METRICS = ("system.cpu.utilization", "system.memory.utilization", "system.filesystem.utilization")
# The same three as the agent's /metrics (and Prometheus' OTLP receiver) names them.
_DEFAULT_PROMETHEUS = tuple(name.replace(".", "_") + "_ratio" for name in _DEFAULT_METRICS)
# A metric name, nothing else: the name goes into a PromQL selector as it is.
_PROMETHEUS_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,199}")
# An OpenTelemetry instrument name, as the agent's series API takes it.
_INSTRUMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]{0,254}")


def chart_metrics(cfg: HubSettings) -> tuple[str, ...]:
    """Return the metrics charted on the host page, named as the chart source names them."""
    if cfg.chart_metrics is not None:
        return cfg.chart_metrics
    return _DEFAULT_PROMETHEUS if cfg.prometheus_url else _DEFAULT_METRICS


def metric_error(cfg: HubSettings, metric: str) -> str | None:
    """Return why `metric` is not a metric name the chart source takes (None: it is one)."""
    if cfg.prometheus_url:
        if _PROMETHEUS_NAME.fullmatch(metric) is None:
            return "metric: a Prometheus metric name is required ([a-zA-Z_:][a-zA-Z0-9_:]*)"
    elif _INSTRUMENT_NAME.fullmatch(metric) is None:
        return "metric: an OpenTelemetry metric name is required"
    return None


async def fetch_series(cfg: HubSettings, host: str, metric: str, since: int, step: int) -> dict[str, Any]:
    """Return {"ok", "source", "series": [{"labels", "points": [[t, v], ...]}]} or an error."""
    end = time.time()
    async with httpx.AsyncClient(timeout=_TIMEOUT) as client:
        try:
            if cfg.prometheus_url:
                return await _prometheus(client, cfg, host, metric, end - since, end, step)
            return await _agent(client, cfg, host, metric, since)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "source": _source(cfg), "error": f"{type(exc).__name__}: {exc}"}


def _source(cfg: HubSettings) -> str:
    return "prometheus" if cfg.prometheus_url else "agent"


async def _prometheus(
    client: httpx.AsyncClient, cfg: HubSettings, host: str, metric: str, start: float, end: float, step: int
) -> dict[str, Any]:
    label_value = host.replace("\\", "\\\\").replace('"', '\\"')
    query = f'{metric}{{{cfg.prometheus_host_label}="{label_value}"}}'
    response = await client.get(
        f"{cfg.prometheus_url}/api/v1/query_range",
        params={"query": query, "start": start, "end": end, "step": step},
    )
    doc = response.json()
    if doc.get("status") != "success":
        return {"ok": False, "source": "prometheus", "error": str(doc.get("error", response.status_code))}
    series = [
        {"labels": r.get("metric", {}), "points": [[float(t), float(v)] for t, v in r.get("values", [])]}
        for r in doc["data"]["result"]
    ]
    return {"ok": True, "source": "prometheus", "query": query, "series": series}


async def _agent(
    client: httpx.AsyncClient, cfg: HubSettings, host: str, metric: str, since: int
) -> dict[str, Any]:
    base = cfg.agent_url_template.replace("{host}", quote(host, safe=""))
    response = await client.get(f"{base}/api/v1/series", params={"metric": metric, "since": since})
    if response.status_code != 200:
        return {"ok": False, "source": "agent", "error": f"the agent answered {response.status_code}"}
    doc = response.json()
    raw = doc.get("series", []) if isinstance(doc, dict) else []
    series = []
    for item in raw:
        points = item.get("points") or []
        series.append(
            {
                "labels": item.get("attributes") or item.get("labels") or {},
                "points": [[float(p[0]), float(p[1])] for p in points if p[1] is not None],
            }
        )
    return {"ok": True, "source": "agent", "series": series}
