"""Every shell example of docs/api.md runs against an agent (API and TOKEN set as the doc says)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_sysops.alerts import Severity
from tests.conftest import need_binary

from .conftest import TOKEN, Agent

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_every_example_of_the_api_doc_runs(start_agent: Callable[..., Agent]) -> None:
    need_binary("curl")
    need_binary("jq")
    agent = start_agent(load=True)
    for _ in range(3):
        agent.pipeline.tick()
    agent.fire("sysops.cpu.high", Severity.CRITICAL, cpu="0")
    assert agent.api.history is not None
    assert agent.api.history.flush(10.0)
    port = agent.url.rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # What the doc's first block sets, pointed at this agent; the CLI finds it through the settings.
    env |= {"API": f"{agent.url}/api/v1", "TOKEN": TOKEN}
    env |= {"SYSOPS_PROMETHEUS__PORT": port, "SYSOPS_API__TOKEN": TOKEN}
    ran = 0
    for block in blocks():
        if block.startswith(("ssh ", "API=")):
            continue  # a tunnel to another machine; the variables set above
        # The event stream never ends by itself (its own test reads it).
        script = "\n".join(line for line in block.splitlines() if "/events" not in line)
        if not script.strip():
            continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (script, result.stdout, result.stderr)
        assert result.stdout.strip() or "DELETE" in script, script
        assert "error" not in result.stdout.lower() or "errors" in result.stdout, (script, result.stdout)
        ran += 1
    assert ran >= 9
    assert agent.manager.silences() == []  # every silence the examples added was removed again
