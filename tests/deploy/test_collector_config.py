"""The OpenTelemetry Collector configurations under collector-config/ are consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "collector-config").glob("*.yaml"))
KINDS = ("receivers", "processors", "exporters")
# Component types these files may use, all in the otelcol-contrib distribution: a typo in a type
# name would otherwise pass every reference check and fail only when the Collector starts.
KNOWN_TYPES = {
    "receivers": {"otlp", "prometheus", "hostmetrics"},
    "processors": {"memory_limiter", "batch", "resourcedetection", "resource", "filter", "attributes"},
    "exporters": {"otlp", "otlphttp", "prometheusremotewrite", "prometheus", "debug"},
    "extensions": {"health_check", "pprof", "zpages"},
}


def _load(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict), f"{path.name}: not a mapping"
    return doc


def test_there_is_an_agent_and_a_gateway_config() -> None:
    assert {p.name for p in CONFIGS} >= {"agent-local.yaml", "gateway.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_pipelines_reference_defined_components_and_use_all_of_them(path: Path) -> None:
    doc = _load(path)
    pipelines: dict[str, dict[str, list[str]]] = doc["service"]["pipelines"]
    assert pipelines, f"{path.name}: no pipelines"
    used: dict[str, set[str]] = {kind: set() for kind in KINDS}
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] == "metrics", f"{path.name}: {name}: otel-sysops sends metrics only"
        for kind in KINDS:
            refs = pipeline.get(kind, [])
            if kind != "processors":
                assert refs, f"{path.name}: pipeline {name} has no {kind}"
            for ref in refs:
                assert ref in (doc.get(kind) or {}), f"{path.name}: pipeline {name}: {kind} {ref!r} undefined"
            used[kind].update(refs)
    for kind in KINDS:
        unused = set(doc.get(kind) or {}) - used[kind]
        assert not unused, f"{path.name}: {kind} defined but in no pipeline: {sorted(unused)}"
    extensions = set(doc.get("extensions") or {})
    assert set(doc["service"].get("extensions", [])) == extensions, f"{path.name}: extensions mismatch"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_memory_limiter_is_first_and_batch_last_in_every_pipeline(path: Path) -> None:
    for name, pipeline in _load(path)["service"]["pipelines"].items():
        processors = pipeline.get("processors", [])
        assert processors, f"{path.name}: {name} has no processors"
        assert processors[0].split("/")[0] == "memory_limiter", f"{path.name}: {name}: {processors}"
        assert processors[-1].split("/")[0] == "batch", f"{path.name}: {name}: {processors}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_component_types_exist_in_the_contrib_distribution(path: Path) -> None:
    doc = _load(path)
    for kind, known in KNOWN_TYPES.items():
        for component in doc.get(kind) or {}:
            assert component.split("/")[0] in known, f"{path.name}: unknown {kind} type {component!r}"


def test_agent_config_listens_where_the_agent_sends_by_default() -> None:
    # The agent's OTLP default is gRPC; the deploy docs point it at 127.0.0.1:4317.
    doc = _load(ROOT / "collector-config" / "agent-local.yaml")
    protocols = doc["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert doc["processors"]["resourcedetection"]["override"] is False
    assert doc["exporters"]["prometheusremotewrite"]["resource_to_telemetry_conversion"]["enabled"]
