"""JSON schemas for the Prometheus Operator objects the overlays ship (monitoring.coreos.com/v1).

Only the fields the overlays use, typed as in the Operator's CRDs, with unknown fields refused
(the CRDs are not part of the Kubernetes schema kubernetes-validate knows).
"""

from __future__ import annotations

from typing import Any

_STRING: dict[str, Any] = {"type": "string"}
_DURATION: dict[str, Any] = {
    "type": "string",
    "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_LABELS: dict[str, Any] = {"type": "object", "additionalProperties": _STRING}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_RELABEL = _closed(
    {
        "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "labelmap", "LabelMap"]},
        "sourceLabels": {"type": "array", "items": _STRING},
        "targetLabel": _STRING,
        "regex": _STRING,
        "replacement": _STRING,
        "separator": _STRING,
    }
)
_ENDPOINT = {
    "port": _STRING,
    "path": _STRING,
    "scheme": {"enum": ["http", "https"]},
    "interval": _DURATION,
    "scrapeTimeout": _DURATION,
    "honorLabels": {"type": "boolean"},
    "relabelings": {"type": "array", "items": _RELABEL},
    "metricRelabelings": {"type": "array", "items": _RELABEL},
}
_METADATA = _closed(
    {"name": _STRING, "namespace": _STRING, "labels": _LABELS, "annotations": _LABELS}, ("name",)
)
_SELECTOR = _closed({"matchLabels": _LABELS})
_NAMESPACES = _closed({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": _STRING}})


def _monitor(kind: str, endpoints: str) -> dict[str, Any]:
    spec = _closed(
        {
            "selector": _SELECTOR,
            "namespaceSelector": _NAMESPACES,
            "jobLabel": _STRING,
            endpoints: {"type": "array", "minItems": 1, "items": _closed(_ENDPOINT)},
        },
        ("selector",),
    )
    return _closed(
        {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": kind},
            "metadata": _METADATA,
            "spec": spec,
        },
        ("apiVersion", "kind", "metadata", "spec"),
    )


SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "PodMonitor"): _monitor("PodMonitor", "podMetricsEndpoints"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _monitor("ServiceMonitor", "endpoints"),
}
