"""`otel-sysops alerts list|history|silence` against a running agent's API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from otel_sysops.alerts import Severity
from otel_sysops.cli import main

from .conftest import TOKEN, Agent


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_history_and_silences_through_the_cli(
    start_agent: Callable[..., Agent], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    agent = start_agent()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    url = ["--url", agent.url]

    assert run(capsys, "alerts", "list", *url)[1].strip() == "no alert is firing"
    agent.fire("disk.full", Severity.CRITICAL, device="sda")
    code, out, _ = run(capsys, "alerts", "list", *url)
    assert code == 0
    assert "critical" in out
    assert "disk.full" in out
    assert "device=sda" in out

    code, out, err = run(
        capsys, "alerts", "silence", "add", *url, "--match", "rule=disk.*", "--duration", "1h"
    )
    assert code == 1
    assert "401" in err
    code, out, _ = run(
        capsys,
        "alerts",
        "silence",
        "add",
        *url,
        "--token-file",
        str(token),
        "--match",
        "rule=disk.*",
        "--duration",
        "1h",
        "--comment",
        "swap",
    )
    assert code == 0
    silence_id = out.split()[0]
    code, out, _ = run(capsys, "alerts", "silence", "list", *url, "--json")
    assert [s["id"] for s in json.loads(out)["silences"]] == [silence_id]
    assert silence_id in run(capsys, "alerts", "list", *url)[1]

    assert agent.api.history is not None
    assert agent.api.history.flush(10.0)
    code, out, _ = run(capsys, "alerts", "history", *url, "--severity", "critical")
    assert code == 0
    assert "disk.full" in out
    assert "firing" in out
    code, out, _ = run(capsys, "alerts", "history", *url, "--json", "--rule", "nothing.*")
    assert json.loads(out)["total"] == 0

    code, out, _ = run(capsys, "alerts", "silence", "rm", *url, "--token-file", str(token), silence_id)
    assert code == 0
    assert silence_id in out
    assert run(capsys, "alerts", "silence", "list", *url)[1].strip() == "no silence in force"


def test_bad_input_and_an_absent_agent_are_one_line(
    start_agent: Callable[..., Agent], capsys: pytest.CaptureFixture[str]
) -> None:
    agent = start_agent()
    code, _, err = run(capsys, "alerts", "history", "--url", agent.url, "--since", "last tuesday")
    assert code == 1
    assert err.count("\n") == 1
    assert "since" in err
    code, _, err = run(
        capsys, "alerts", "silence", "add", "--url", agent.url, "--match", "nokey", "--duration", "1h"
    )
    assert code == 2
    assert "--match" in err
    agent.server.close(2.0)
    code, _, err = run(capsys, "alerts", "list", "--url", agent.url)
    assert code == 1
    assert "cannot reach" in err
    assert err.count("\n") == 1
