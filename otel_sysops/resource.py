"""The resource every metric carries: host, OS, service and Kubernetes identity."""

from __future__ import annotations

import os
import platform
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.semconv._incubating.attributes import host_attributes as host
from opentelemetry.semconv._incubating.attributes import k8s_attributes as k8s
from opentelemetry.semconv._incubating.attributes import os_attributes as os_attr
from opentelemetry.semconv._incubating.attributes import service_attributes as svc
from opentelemetry.semconv.attributes import service_attributes as svc_stable

from . import __version__
from .settings import Settings

# uname -m -> the semantic conventions' host.arch values.
_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "x86",
    "i686": "x86",
    "ppc64le": "ppc64",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "armv7l": "arm32",
}
# Downward-API variables the DaemonSet sets.
_K8S_ENV = {
    "K8S_NODE_NAME": k8s.K8S_NODE_NAME,
    "K8S_POD_NAME": k8s.K8S_POD_NAME,
    "K8S_NAMESPACE_NAME": k8s.K8S_NAMESPACE_NAME,
    "K8S_POD_UID": k8s.K8S_POD_UID,
}


def machine_id(host_root: Path) -> str | None:
    """Return the host's machine-id, read under the host root (a container sees the host's)."""
    for rel in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            text = (host_root / rel).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if text:
            return text
    return None


def os_description(host_root: Path) -> str:
    """Return PRETTY_NAME from the host's os-release, else the kernel's name and release."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            for line in (host_root / rel).read_text(encoding="utf-8").splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.partition("=")[2].strip().strip('"')
        except OSError:
            continue
    return f"{platform.system()} {platform.release()}"


def host_name(settings: Settings, host_root: Path | None = None) -> str:
    """Return the host's name: the setting, the host's /etc/hostname (containers), then the kernel's."""
    if settings.hostname:
        return settings.hostname
    root = settings.host_root if host_root is None else host_root
    if root != Path("/"):
        try:
            name = (root / "etc/hostname").read_text(encoding="utf-8").strip()
        except OSError:
            name = ""
        if name:
            return name
    return socket.gethostname()


def build_resource(
    settings: Settings, environ: Mapping[str, str] | None = None, instance_id: str | None = None
) -> Resource:
    """Return the resource: detected attributes, overridden by OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME.

    `environ` supplies the downward-API variables; the OTEL_* ones are read by the SDK from the
    process environment.
    """
    env = os.environ if environ is None else environ
    attrs: dict[str, str] = {
        host.HOST_NAME: host_name(settings),
        host.HOST_ARCH: _ARCH.get(platform.machine().lower(), platform.machine().lower()),
        os_attr.OS_TYPE: platform.system().lower(),
        os_attr.OS_DESCRIPTION: os_description(settings.host_root),
        svc_stable.SERVICE_NAME: "otel-sysops",
        svc_stable.SERVICE_VERSION: __version__,
    }
    mid = machine_id(settings.host_root)
    if mid:
        attrs[host.HOST_ID] = mid
    for var, key in _K8S_ENV.items():
        if env.get(var):
            attrs[key] = env[var]
    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (and adds telemetry.sdk.*);
    # merged over ours, they win. Its fallback name "unknown_service..." must not replace ours.
    from_env = dict(Resource.create({}).attributes)
    if str(from_env.get(svc_stable.SERVICE_NAME, "")).startswith("unknown_service"):
        del from_env[svc_stable.SERVICE_NAME]
    # The SDK also adds a random service.instance.id: only one given in OTEL_RESOURCE_ATTRIBUTES wins.
    if svc.SERVICE_INSTANCE_ID not in OTELResourceDetector().detect().attributes:
        from_env.pop(svc.SERVICE_INSTANCE_ID, None)
    merged = {**attrs, **from_env}
    attrs[svc.SERVICE_INSTANCE_ID] = instance_id or stable_instance_id(
        str(merged[svc_stable.SERVICE_NAME]),
        str(merged.get(svc.SERVICE_NAMESPACE, "")),
        str(merged.get(host.HOST_ID) or merged[host.HOST_NAME]),
    )
    return Resource(attrs).merge(Resource(from_env))


# The UUID namespace the semantic conventions give for version 5 service.instance.id values.
INSTANCE_ID_NAMESPACE = uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320")


def stable_instance_id(service_name: str, service_namespace: str, host_identity: str) -> str:
    """Return a service.instance.id that survives restarts: UUID v5 of the service and the host.

    The same agent on the same host (host.id, from the machine id; the host name without one)
    keeps its identity, so series through a Collector keep theirs. OTEL_RESOURCE_ATTRIBUTES
    with service.instance.id=... overrides it (two agents on one host need distinct ones).
    """
    name = "/".join(part for part in (service_namespace, service_name, host_identity) if part)
    return str(uuid.uuid5(INSTANCE_ID_NAMESPACE, name))
