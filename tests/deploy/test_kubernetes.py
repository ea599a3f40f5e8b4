"""The Kubernetes manifests validate against a recent API schema and run the agent safely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from otel_sysops.resource import build_resource
from otel_sysops.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
# A recent release whose schema ships with kubernetes-validate (strict: unknown fields are errors).
KUBERNETES_VERSION = "1.33.0"


def _kustomization() -> dict[str, Any]:
    doc = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def _resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        out.extend(doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)
    return out


def _one(kind: str) -> dict[str, Any]:
    found = [r for r in _resources() if r["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    containers = _one("DaemonSet")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_kustomization_lists_every_manifest_and_each_exists() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("resource", _resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_manifest_is_valid_for_a_recent_kubernetes(resource: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_validation_rejects_a_broken_manifest() -> None:
    # The validator is really checking: a misspelt field in the DaemonSet fails.
    broken = _one("DaemonSet")
    broken["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_daemonset_sees_the_host_read_only() -> None:
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True
    host_volumes = {v["name"]: v for v in pod["volumes"] if "hostPath" in v}
    assert [v["hostPath"]["path"] for v in host_volumes.values()] == ["/"]
    mounts = [m for m in _container()["volumeMounts"] if m["name"] in host_volumes]
    assert mounts == [
        {
            "name": next(iter(host_volumes)),
            "mountPath": "/host",
            "readOnly": True,
            "mountPropagation": "HostToContainer",
        }
    ]


def test_container_runs_non_root_with_only_the_capabilities_it_needs() -> None:
    pod = _one("DaemonSet")["spec"]["template"]["spec"]
    sec = _container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["privileged"] is False
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert set(sec["capabilities"]["add"]) <= {"DAC_READ_SEARCH", "SYS_PTRACE", "SYSLOG"}
    assert "SYSLOG" in sec["capabilities"]["add"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]


def test_resources_have_requests_and_limits() -> None:
    resources = _container()["resources"]
    for key in ("requests", "limits"):
        assert set(resources[key]) == {"cpu", "memory"}


def test_probes_hit_the_health_endpoints_on_the_metrics_port() -> None:
    container = _container()
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe"):
        assert port[container[probe]["httpGet"]["port"]] == 9464
    service = _one("Service")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == 9464
    assert (
        service["spec"]["selector"].items()
        <= _one("DaemonSet")["spec"]["template"]["metadata"]["labels"].items()
    )


def _pod_environment() -> dict[str, str]:
    """Resolve the container's environment as the kubelet would on a node (downward API values faked)."""
    downward = {
        "spec.nodeName": "node-a",
        "metadata.name": "otel-sysops-x1",
        "metadata.namespace": "otel-sysops",
        "metadata.uid": "0000-1111",
        "status.hostIP": "10.0.0.7",
    }
    env: dict[str, str] = {}
    for var in _container()["env"]:
        if "value" in var:
            value = str(var["value"])
            for name, known in env.items():
                value = value.replace(f"$({name})", known)
            env[var["name"]] = value
        else:
            env[var["name"]] = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
    for ref in _container()["envFrom"]:
        secret = _one("Secret")
        assert ref["secretRef"]["name"] == secret["metadata"]["name"]
        env.update(secret["stringData"])
    return env


def test_the_agent_accepts_the_pods_settings(tmp_path: Path) -> None:
    # Every SYSOPS_* variable and the ConfigMap's TOML load through the real settings code
    # (an unknown or invalid key would be a crash loop in the cluster).
    env = _pod_environment()
    config_map = _one("ConfigMap")
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == "config")
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_map["data"]["config.toml"])
    assert env["SYSOPS_CONFIG"] == f"{mount['mountPath']}/config.toml"
    env["SYSOPS_CONFIG"] = str(config_file)
    settings = load_settings(None, None, environ=env)
    assert settings.host_root == Path("/host")
    assert settings.procfs == Path("/host/proc")
    assert settings.sysfs == Path("/host/sys")
    assert settings.prometheus.host == "0.0.0.0"
    assert settings.prometheus.port == 9464
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://10.0.0.7:4317"
    # The SQLite file lives on the writable state volume, not the read-only root.
    state = next(m for m in _container()["volumeMounts"] if m["name"] == "state")
    assert settings.store.sqlite_path is not None
    assert settings.store.sqlite_path.parent == Path(state["mountPath"])
    resource = build_resource(settings, environ=env, instance_id="x").attributes
    assert resource["k8s.node.name"] == "node-a"
    assert resource["k8s.pod.name"] == "otel-sysops-x1"
    assert resource["k8s.namespace.name"] == "otel-sysops"


def _apply_json6902(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the `replace` and `add` operations kustomize would (enough for our overlay)."""
    for op in ops:
        assert op["op"] in {"replace", "add"}, op
        *parents, last = [p for p in op["path"].split("/") if p]
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if op["op"] == "replace" and isinstance(node, dict):
            assert last in node, f"replace of a missing {op['path']}"
        node[int(last) if isinstance(node, list) else last] = op["value"]
    return doc


def test_full_detail_overlay_keeps_only_the_three_capabilities() -> None:
    overlay = K8S / "overlays" / "full-detail"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../.."]
    (patch,) = kustomization["patches"]
    assert patch["target"]["kind"] == "DaemonSet"
    assert patch["target"]["name"] == _one("DaemonSet")["metadata"]["name"]
    ops = yaml.safe_load((overlay / patch["path"]).read_text())
    patched = _apply_json6902(_one("DaemonSet"), ops)
    kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)
    pod = patched["spec"]["template"]["spec"]
    sec = pod["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 0
    assert sec["capabilities"] == _container()["securityContext"]["capabilities"]
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["privileged"] is False


def test_with_collector_overlay_listens_where_the_agent_sends() -> None:
    overlay = K8S / "overlays" / "with-collector"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == "../.."
    (generator,) = kustomization["configMapGenerator"]
    collectors = [
        doc
        for name in kustomization["resources"][1:]
        for doc in yaml.safe_load_all((overlay / name).read_text())
        if doc and doc["kind"] == "DaemonSet"
    ]
    assert len(collectors) == 1
    collector = collectors[0]
    kubernetes_validate.validate(collector, KUBERNETES_VERSION, strict=True)
    pod = collector["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == generator["name"]
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    host_ports = {p["hostPort"] for p in container["ports"] if "hostPort" in p}
    # The agent's endpoint is http://$(HOST_IP):<port>: that port must be a hostPort here.
    endpoint = _pod_environment()["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert int(endpoint.rsplit(":", 1)[1]) in host_ports
    # The config is collector-config/agent-local.yaml with the listeners on the pod's address.
    (config_file,) = generator["files"]
    assert f"--config=/etc/otelcol/{config_file}" in container["args"]
    overlay_config = yaml.safe_load((overlay / config_file).read_text())
    local = yaml.safe_load((ROOT / "collector-config" / "agent-local.yaml").read_text())
    for protocol in ("grpc", "http"):
        listen = overlay_config["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
        assert listen.startswith("0.0.0.0:")
        local["receivers"]["otlp"]["protocols"][protocol]["endpoint"] = listen
    local["extensions"]["health_check"]["endpoint"] = overlay_config["extensions"]["health_check"]["endpoint"]
    assert overlay_config == local
