"""The resource: host identity read under the host root, Kubernetes and OTEL_* variables honoured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from otel_sysops.resource import build_resource
from otel_sysops.settings import Settings


def test_host_identity_comes_from_the_host_root(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp_path / "etc/hostname").write_text("node-17\n")
    (tmp_path / "etc/os-release").write_text('NAME="Test"\nPRETTY_NAME="TestOS 9 (frozen)"\n')
    attrs = build_resource(make_settings(host_root=str(tmp_path)), environ={}).attributes
    assert attrs["host.id"] == "0123456789abcdef0123456789abcdef"
    assert attrs["host.name"] == "node-17"
    assert attrs["os.description"] == "TestOS 9 (frozen)"
    assert attrs["os.type"] == "linux"
    assert attrs["service.name"] == "otel-sysops"
    assert attrs["service.instance.id"]


def test_kubernetes_and_otel_variables(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,team=sre")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-agent")
    env = {"K8S_NODE_NAME": "worker-3", "K8S_POD_NAME": "otel-sysops-x2x", "OTEL_SERVICE_NAME": "edge-agent"}
    attrs = build_resource(settings, environ=env).attributes
    assert attrs["k8s.node.name"] == "worker-3"
    assert attrs["k8s.pod.name"] == "otel-sysops-x2x"
    assert attrs["deployment.environment.name"] == "prod"
    assert attrs["team"] == "sre"
    assert attrs["service.name"] == "edge-agent"
    assert "k8s.node.name" not in build_resource(settings, environ={}).attributes


def test_hostname_setting_wins(make_settings: Callable[..., Settings]) -> None:
    assert build_resource(make_settings(hostname="db-1"), environ={}).attributes["host.name"] == "db-1"


def test_service_name_from_otel_resource_attributes_is_kept(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings()
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes")
    assert build_resource(settings, environ={}).attributes["service.name"] == "from-attributes"
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES")
    assert build_resource(settings, environ={}).attributes["service.name"] == "otel-sysops"
