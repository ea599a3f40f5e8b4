"""Import only what the configuration uses: the default agent loads no grpc and no nats."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, sys
from otel_sysops.agent import Agent
from otel_sysops.settings import load_settings
agent = Agent(load_settings(None, {"prometheus": {"enabled": False}}))
agent.pipeline.tick()
tops = {m.split(".")[0] for m in sys.modules}
exporters = {m for m in sys.modules if m.startswith("opentelemetry.exporter")}
print(json.dumps(sorted(tops | exporters)))
"""


def loaded(extra_env: dict[str, str]) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env.update(extra_env)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_default_configuration_imports_neither_grpc_nor_nats() -> None:
    modules = loaded({})
    assert "grpc" not in modules
    assert "nats" not in modules
    assert "opentelemetry.exporter.otlp.proto.grpc" not in modules


def test_grpc_is_imported_only_when_otlp_over_grpc_is_configured() -> None:
    grpc = loaded({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"})
    assert "grpc" in grpc
    http = loaded(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
    )
    assert "grpc" not in http
    assert "opentelemetry.exporter.otlp.proto.http" in http
