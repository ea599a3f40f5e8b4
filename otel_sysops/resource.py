"""The resource every metric carries: host, OS, service and Kubernetes identity."""

from __future__ import annotations

import os
import platform
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path

from opentelemetry.sdk.resources import Resource
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
        svc.SERVICE_INSTANCE_ID: instance_id or str(uuid.uuid4()),
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
    return Resource(attrs).merge(Resource(from_env))
