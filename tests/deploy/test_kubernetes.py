"""The Kubernetes manifests, as `kubectl kustomize` builds them, validate strictly and run the agent safely.

Every directory under deploy/kubernetes holding a kustomization.yaml is built by the real kustomize
(Debian's kubectl) and every object it outputs is validated with unknown fields as errors: the
built-in kinds against the Kubernetes schema, the Prometheus Operator's kinds against the subset of
their CRD schema the overlays use (tests/deploy/prometheus_operator_schema.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from otel_sysops.resource import build_resource
from otel_sysops.settings import load_settings
from tests.conftest import need_binary

from .prometheus_operator_schema import SCHEMAS as OPERATOR_SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
# A recent release whose schema ships with kubernetes-validate (strict: unknown fields are errors).
KUBERNETES_VERSION = "1.33.0"
BUILDS = sorted(str(p.parent.relative_to(K8S)) for p in K8S.rglob("kustomization.yaml"))


@cache
def _built(directory: str) -> tuple[dict[str, Any], ...]:
    """Return the objects `kubectl kustomize deploy/kubernetes/<directory>` prints."""
    kubectl = need_binary("kubectl")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S / directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}: {result.stderr.strip()}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _objects(directory: str) -> list[dict[str, Any]]:
    # Deep copies: a test may change what it got.
    return [yaml.safe_load(yaml.safe_dump(doc)) for doc in _built(directory)]


def _one(kind: str, directory: str = "base", name: str | None = None) -> dict[str, Any]:
    """Return the one object of `kind` (named `name`, or `name-<hash>` as kustomize names generated ones)."""
    found = [
        r
        for r in _objects(directory)
        if r["kind"] == kind and (name is None or r["metadata"]["name"] in {name, *_hashed(r, name)})
    ]
    assert len(found) == 1, f"expected one {kind} {name} in {directory}, found {len(found)}"
    return found[0]


def _hashed(doc: dict[str, Any], name: str) -> set[str]:
    generated = str(doc["metadata"]["name"])
    if doc["kind"] in {"ConfigMap", "Secret"} and generated.rsplit("-", 1)[0] == name:
        return {generated}
    return set()


def _container(directory: str = "base") -> dict[str, Any]:
    containers = _one("DaemonSet", directory, "otel-sysops")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _validate(doc: dict[str, Any]) -> None:
    schema = OPERATOR_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
    if schema is not None:
        jsonschema.validate(doc, schema)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_layout_is_built() -> None:
    # The base and every overlay, the documented ones included.
    assert {"base", "overlays/full-detail", "overlays/with-collector", "overlays/prometheus-operator"} <= set(
        BUILDS
    )
    # An overlay inside the base's directory is the cycle kustomize refuses: none may exist.
    for directory in BUILDS:
        doc = yaml.safe_load((K8S / directory / "kustomization.yaml").read_text())
        for ref in doc.get("resources", []):
            if (K8S / directory / ref).is_dir():
                assert not (K8S / directory).resolve().is_relative_to((K8S / directory / ref).resolve())


@pytest.mark.parametrize("directory", BUILDS)
def test_kustomize_output_is_valid_for_a_recent_kubernetes(directory: str) -> None:
    objects = _objects(directory)
    assert objects
    for doc in objects:
        try:
            _validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            pytest.fail(
                f"{directory}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )
        assert doc["metadata"].get("namespace", "otel-sysops") == "otel-sysops"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "otel-sysops"


@pytest.mark.parametrize("kind", ["DaemonSet", "PodMonitor", "ServiceMonitor"])
def test_validation_rejects_a_broken_manifest(kind: str) -> None:
    # The validators are really checking: a misspelt field fails.
    directory = {
        "DaemonSet": "base",
        "PodMonitor": "overlays/prometheus-operator",
        "ServiceMonitor": "overlays/prometheus-operator-servicemonitor",
    }[kind]
    broken = _one(kind, directory)
    _validate(broken)
    if kind == "DaemonSet":
        broken["spec"]["template"]["spec"]["hostPid"] = True
    else:
        endpoints = broken["spec"]["podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"]
        endpoints[0]["scrapeIntervall"] = "10s"
    with pytest.raises((kubernetes_validate.ValidationError, jsonschema.ValidationError)):
        _validate(broken)


def test_daemonset_sees_the_host_read_only_on_linux_nodes() -> None:
    pod = _one("DaemonSet", "base", "otel-sysops")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
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
    pod = _one("DaemonSet", "base", "otel-sysops")["spec"]["template"]["spec"]
    sec = _container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["privileged"] is False
    assert sec["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH", "SYSLOG"]}
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
        # No host: the kubelet probes the pod IP, which on hostNetwork is the node IP we bind to.
        assert "host" not in container[probe]["httpGet"]
        assert port[container[probe]["httpGet"]["port"]] == 9464
    service = _one("Service")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == 9464
    assert (
        service["spec"]["selector"].items()
        <= _one("DaemonSet", "base", "otel-sysops")["spec"]["template"]["metadata"]["labels"].items()
    )


DOWNWARD = {
    "spec.nodeName": "node-a",
    "metadata.name": "otel-sysops-x1",
    "metadata.namespace": "otel-sysops",
    "metadata.uid": "0000-1111",
    "status.hostIP": "10.0.0.7",
}


def _pod_environment(directory: str = "base") -> dict[str, str]:
    """Resolve the container's environment as the kubelet would on a node (downward API values given)."""
    env: dict[str, str] = {}
    container = _container(directory)
    for var in container["env"]:
        if "value" in var:
            value = str(var["value"])
            for name, known in env.items():
                value = value.replace(f"$({name})", known)
            env[var["name"]] = value
        else:
            env[var["name"]] = DOWNWARD[var["valueFrom"]["fieldRef"]["fieldPath"]]
    for ref in container["envFrom"]:
        secret = _one("Secret", directory)
        assert ref["secretRef"]["name"] == secret["metadata"]["name"]
        env.update(secret["stringData"])
    return env


def test_the_agent_accepts_the_pods_settings_and_binds_to_the_node_ip(tmp_path: Path) -> None:
    # Every SYSOPS_* variable and the ConfigMap's TOML load through the real settings code
    # (an unknown or invalid key would be a crash loop in the cluster).
    env = _pod_environment()
    config_map = _one("ConfigMap")
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == "config")
    volume = next(
        v
        for v in _one("DaemonSet", "base", "otel-sysops")["spec"]["template"]["spec"]["volumes"]
        if v["name"] == "config"
    )
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    config_file = tmp_path / "config.toml"
    config_file.write_text(config_map["data"]["config.toml"])
    assert env["SYSOPS_CONFIG"] == f"{mount['mountPath']}/config.toml"
    env["SYSOPS_CONFIG"] = str(config_file)
    settings = load_settings(None, None, environ=env)
    assert settings.host_root == Path("/host")
    assert settings.procfs == Path("/host/proc")
    assert settings.sysfs == Path("/host/sys")
    # The node's own address (status.hostIP), not every interface of the node.
    assert settings.prometheus.host == "10.0.0.7"
    assert settings.prometheus.port == 9464
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://10.0.0.7:4317"
    # The SQLite file lives on the writable state volume, not the read-only root.
    state = next(m for m in _container()["volumeMounts"] if m["name"] == "state")
    assert settings.store.sqlite_path is not None
    assert settings.store.sqlite_path.parent == Path(state["mountPath"])
    # So do the followed files' positions: a restarted container reads what was written meanwhile.
    assert settings.logs.state_dir is not None
    assert settings.logs.state_dir.parent == Path(state["mountPath"])
    resource = build_resource(settings, environ=env, instance_id="x").attributes
    assert resource["k8s.node.name"] == "node-a"
    assert resource["k8s.pod.name"] == "otel-sysops-x1"
    assert resource["k8s.namespace.name"] == "otel-sysops"


def test_full_detail_overlay_runs_as_root_with_the_same_capabilities_only() -> None:
    base = _one("DaemonSet", "base", "otel-sysops")
    patched = _one("DaemonSet", "overlays/full-detail", "otel-sysops")
    pod = patched["spec"]["template"]["spec"]
    sec = pod["containers"][0]["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is False
    assert sec["capabilities"] == _container()["securityContext"]["capabilities"]
    assert sec["allowPrivilegeEscalation"] is False
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["privileged"] is False
    # Nothing else changes.
    for doc in (base, patched):
        spec = doc["spec"]["template"]["spec"]
        del spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]
        del spec["securityContext"]["runAsNonRoot"], spec["containers"][0]["securityContext"]["runAsNonRoot"]
    assert patched == base


def test_with_collector_overlay_listens_where_the_agent_sends() -> None:
    directory = "overlays/with-collector"
    collector = _one("DaemonSet", directory, name="otel-sysops-collector")
    pod = collector["spec"]["template"]["spec"]
    # kustomize names the generated ConfigMap with a content hash and rewrites the reference.
    config_map = _one("ConfigMap", directory, name="otel-sysops-collector")
    assert pod["volumes"][0]["configMap"]["name"] == config_map["metadata"]["name"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    container = pod["containers"][0]
    image, tag = container["image"].rsplit(":", 1)
    assert image == "otel/opentelemetry-collector-contrib"
    assert tuple(int(part) for part in tag.split(".")) >= (0, 165, 1)
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    host_ports = {p["hostPort"] for p in container["ports"] if "hostPort" in p}
    # The agent's endpoint is http://$(HOST_IP):<port>: that port must be a hostPort here.
    endpoint = _pod_environment(directory)["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert int(endpoint.rsplit(":", 1)[1]) in host_ports
    # The config is collector-config/agent-local.yaml with the listeners on the pod's address.
    (config_file,) = config_map["data"]
    assert f"--config=/etc/otelcol/{config_file}" in container["args"]
    overlay_config = yaml.safe_load(config_map["data"][config_file])
    local = yaml.safe_load((ROOT / "collector-config" / "agent-local.yaml").read_text())
    for protocol in ("grpc", "http"):
        listen = overlay_config["receivers"]["otlp"]["protocols"][protocol]["endpoint"]
        assert listen.startswith("0.0.0.0:")
        local["receivers"]["otlp"]["protocols"][protocol]["endpoint"] = listen
    local["extensions"]["health_check"]["endpoint"] = overlay_config["extensions"]["health_check"]["endpoint"]
    assert overlay_config == local


@pytest.mark.parametrize(
    ("directory", "kind", "endpoints"),
    [
        ("overlays/prometheus-operator", "PodMonitor", "podMetricsEndpoints"),
        ("overlays/prometheus-operator-servicemonitor", "ServiceMonitor", "endpoints"),
    ],
)
def test_prometheus_operator_monitors_select_the_agents(directory: str, kind: str, endpoints: str) -> None:
    objects = _objects(directory)
    monitor = _one(kind, directory)
    # Only one way of scraping per overlay: each agent is scraped once.
    assert [o["kind"] for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")] == [kind]
    selected = (
        _one("DaemonSet", directory, "otel-sysops")["spec"]["template"]["metadata"]["labels"]
        if kind == "PodMonitor"
        else _one("Service", directory)["metadata"]["labels"]
    )
    assert monitor["spec"]["selector"]["matchLabels"].items() <= selected.items()
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [
        _one("Namespace", directory)["metadata"]["name"]
    ]
    (endpoint,) = monitor["spec"][endpoints]
    if kind == "PodMonitor":
        assert endpoint["port"] in {p["name"] for p in _container(directory)["ports"]}
    else:
        assert endpoint["port"] in {p["name"] for p in _one("Service", directory)["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # Everything else is the base, unchanged.
    others = [o for o in objects if o["kind"] != kind]
    assert others == _objects("base")


def test_other_users_exe_needs_sys_ptrace_but_fd_counts_do_not(tmp_path: Path) -> None:
    # Why the manifests hold DAC_READ_SEARCH and not SYS_PTRACE: with DAC_READ_SEARCH alone, root
    # lists another user's /proc/<pid>/fd (the descriptor count) but cannot readlink its exe (a
    # ptrace access check, proc(5)); the process collector then names the process from its stat.
    if os.geteuid() != 0:
        pytest.skip("needs root to drop capabilities and run a process as another user")
    setpriv = need_binary("setpriv")
    other = subprocess.Popen([setpriv, "--reuid=54321", "--regid=54321", "--clear-groups", "sleep", "60"])
    try:
        probe = (
            "import os, sys\n"
            "pid = sys.argv[1]\n"
            "print(len(os.listdir(f'/proc/{pid}/fd')) >= 0)\n"
            "try:\n    os.readlink(f'/proc/{pid}/exe'); print('exe')\n"
            "except PermissionError:\n    print('denied')\n"
        )

        def run(caps: str) -> list[str]:
            cmd = [setpriv, "--inh-caps=-all", f"--bounding-set=-all,{caps}", sys.executable, "-c", probe]
            out = subprocess.run(
                [*cmd, str(other.pid)], capture_output=True, text=True, timeout=30, check=True
            )
            return out.stdout.split()

        assert run("+dac_read_search,+syslog") == ["True", "denied"]
        assert run("+dac_read_search,+syslog,+sys_ptrace") == ["True", "exe"]
    finally:
        other.kill()
        other.wait(timeout=10)


def test_install_docs_kubectl_commands_build() -> None:
    # Every `kubectl kustomize DIR` / `kubectl apply -k DIR` in docs/install.md names a directory
    # the real kustomize builds (the apply itself needs a cluster; the build is what it runs first).
    text = (ROOT / "docs" / "install.md").read_text()
    directories = [
        line.split()[3 if " -k " in line else 2]
        for line in text.splitlines()
        if line.startswith(("kubectl kustomize ", "kubectl apply -k "))
    ]
    assert len(directories) >= 4
    for directory in directories:
        assert directory.startswith("deploy/kubernetes/"), directory
        assert _built(directory.removeprefix("deploy/kubernetes/"))
