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


CLI_PROBE = """
import json, sys
from otel_sysops.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} | {m for m in sys.modules if "." in m})))
"""


def cli_loaded(*argv: str) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, "-c", CLI_PROBE, *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_commands_that_do_not_collect_load_neither_numpy_nor_the_sdk() -> None:
    for argv in (("version",), ("--help",)):
        modules = cli_loaded(*argv)
        assert "numpy" not in modules, argv
        assert "opentelemetry" not in modules, argv
        assert "pydantic" not in modules, argv
    config = cli_loaded("config", "show")
    assert "pydantic" in config  # it reads the settings...
    assert "numpy" not in config  # ...and nothing that collects
    assert "otel_sysops.pipeline" not in config


def test_the_agent_no_longer_loads_the_sdk_prometheus_exporter() -> None:
    assert "opentelemetry.exporter.prometheus" not in loaded({})
