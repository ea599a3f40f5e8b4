"""The Dockerfile and the systemd unit: structure checked here, the unit verified by systemd itself."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from otel_sysops.settings import load_settings
from tests.conftest import free_port, need, need_binary

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "otel-sysops.service"
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|build-essential|make|libc6-dev|python3-dev|cargo|rustc)\b")


def _stages() -> list[tuple[str, list[str]]]:
    """Return (FROM line, instructions) per stage, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[tuple[str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def test_dockerfile_is_multi_stage_on_a_slim_python_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for from_line, _ in stages:
        assert re.search(r"python:\$\{PYTHON_VERSION\}-slim|python:3\.\d+-slim", from_line), from_line
    build, runtime = stages[0], stages[-1]
    assert any(i.startswith("RUN pip wheel") for i in build[1]), "the first stage builds the wheel"
    installs = [i for i in runtime[1] if "pip install" in i]
    assert installs, "the final stage installs the wheel"
    assert all("--no-index" in i and "from=build" in i for i in installs), installs


def test_final_image_has_no_build_tools_and_runs_as_non_root() -> None:
    _, runtime = _stages()[-1]
    for instruction in runtime:
        if instruction.upper().startswith("RUN"):
            assert not BUILD_TOOLS.search(instruction.split("pip install", 1)[0]), instruction
            assert "apt-get install" not in instruction, instruction
    users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert not any(i.upper().startswith(("COPY . ", "ADD ")) for i in runtime)


def test_image_has_a_healthcheck_on_healthz_and_the_agent_as_entrypoint() -> None:
    _, runtime = _stages()[-1]
    health = [i for i in runtime if i.upper().startswith("HEALTHCHECK")]
    assert len(health) == 1
    assert "/healthz" in health[0]
    assert 'ENTRYPOINT ["otel-sysops"]' in runtime
    assert "EXPOSE 9464" in runtime


def test_the_image_keeps_its_state_on_the_volume(tmp_path: Path) -> None:
    # The rollups and the followed log files' positions go to the declared volume (the root file
    # system may be read-only), and the image's ENV loads through the real settings code.
    _, runtime = _stages()[-1]
    env: dict[str, str] = {}
    for instruction in runtime:
        if instruction.upper().startswith("ENV "):
            for item in instruction.split()[1:]:
                key, _, value = item.partition("=")
                env[key] = value
    assert 'VOLUME ["/var/lib/otel-sysops"]' in runtime
    config = tmp_path / "config.toml"
    config.write_text("")
    settings = load_settings(config, None, environ={k: v for k, v in env.items() if k.startswith("SYSOPS_")})
    assert settings.store.sqlite_path is not None
    assert settings.store.sqlite_path.parent == Path("/var/lib/otel-sysops")
    assert settings.logs.state_dir is not None
    assert settings.logs.state_dir.parent == Path("/var/lib/otel-sysops")


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    lines = [ln for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[0] == "*"
    copied = {i.split()[1] for i in _stages()[0][1] if i.startswith("COPY ")}
    for path in copied:
        assert f"!{path.rstrip('/')}/" in lines or f"!{path}" in lines, path


def _unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_is_hardened_and_reloads_on_sighup() -> None:
    unit = _unit()
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ProtectHome"][0] in {"yes", "read-only", "tmpfs"}
    capabilities = {"CAP_DAC_READ_SEARCH", "CAP_SYSLOG"}
    assert set(unit["AmbientCapabilities"][0].split()) == capabilities
    assert set(unit["CapabilityBoundingSet"][0].split()) == capabilities
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["StateDirectory"] == ["otel-sysops"]
    env = dict(e.split("=", 1) for e in unit["Environment"])
    # ProtectSystem=strict leaves only the state directory writable: the SQLite file must be in it.
    assert env["SYSOPS_STORE__SQLITE_PATH"].startswith("/var/lib/otel-sysops/")
    assert unit["User"] if "User" in unit else unit["DynamicUser"] == ["yes"]


@pytest.mark.slow
def test_systemd_verifies_the_unit_without_a_warning(tmp_path: Path) -> None:
    systemd_analyze = need_binary("systemd-analyze")
    # The agent of this environment (its bin/ need not be on PATH when pytest runs from a venv).
    agent = str(Path(sys.executable).with_name("otel-sysops"))
    need(Path(agent).exists(), f"{agent} is not installed")
    # verify checks that ExecStart exists: point it at this environment's agent.
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/otel-sysops", agent))
    proc = subprocess.run(
        [systemd_analyze, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 on many unparsable values and only prints them; any line naming the unit fails.
    problems = [ln for ln in (proc.stdout + proc.stderr).splitlines() if unit.name in ln]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not problems, proc.stdout + proc.stderr


@pytest.mark.slow
def test_systemd_rates_the_units_exposure_low(tmp_path: Path) -> None:
    systemd_analyze = need_binary("systemd-analyze")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text())
    # 0 is fully sandboxed, 10 is unprotected; a typical unhardened service scores 9.6.
    # --threshold is in tenths: the command fails above 3.5.
    proc = subprocess.run(
        [systemd_analyze, "security", "--offline=yes", "--threshold=35", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 3.5, proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_agent_accepts_the_units_environment(tmp_path: Path) -> None:
    # The unit's Environment= lines load through the real settings code (a typo would make the
    # service exit 2 at every start) with an empty config file, as the install steps create it.
    env = dict(e.split("=", 1) for e in _unit()["Environment"])
    assert env["SYSOPS_CONFIG"] == "/etc/otel-sysops/config.toml"
    assert _unit()["ConfigurationDirectory"] == ["otel-sysops"]
    config = tmp_path / "config.toml"
    config.write_text("")
    env["SYSOPS_CONFIG"] = str(config)
    settings = load_settings(None, None, environ=env)
    assert settings.store.sqlite_path == Path(env["SYSOPS_STORE__SQLITE_PATH"])
    assert settings.logs.state_dir == Path("/var/lib/otel-sysops/logs")  # followed files resume


def _build_stage_copies() -> list[tuple[str, str]]:
    """Return (source, destination) of every COPY from the build context in the first stage."""
    out: list[tuple[str, str]] = []
    for instruction in _stages()[0][1]:
        parts = instruction.split()
        if parts[0] == "COPY" and not any(p.startswith("--from") for p in parts):
            *sources, dest = parts[1:]
            out.extend((src, dest) for src in sources)
    return out


@pytest.mark.slow
def test_the_build_stage_copies_everything_the_wheel_needs(tmp_path: Path) -> None:
    # Rebuild the image's /src from exactly what the Dockerfile copies, build the wheel there the
    # way `pip wheel .` does (PEP 517, isolated), and check it holds every module of the project.
    src = tmp_path / "src"
    src.mkdir()
    for source, dest in _build_stage_copies():
        target = src / dest if dest.endswith("/") else src / dest.removeprefix("./")
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(origin, target if not dest.endswith("/") else target / origin.name)
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "wheels"), str(src)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    need(
        "could not resolve" not in (proc.stdout + proc.stderr).lower(),
        "no package index for the build backend",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "otel-sysops = otel_sysops.cli:main" in archive.read(entry_points).decode()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    expected = {
        path.relative_to(ROOT).as_posix()
        for pattern in packages["include"]
        for top in ROOT.glob(pattern.rstrip("*"))
        if top.is_dir()
        for path in top.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert expected
    missing = sorted(expected - names)
    assert not missing, f"the image's wheel would lack: {missing}"


@pytest.mark.slow
def test_the_image_healthcheck_command_reflects_healthz(tmp_path: Path) -> None:
    # Run the HEALTHCHECK's exec form as Docker would, against a real agent, then a dead port.
    (health,) = [i for i in _stages()[-1][1] if i.upper().startswith("HEALTHCHECK")]
    argv = json.loads(health[health.index("CMD") + 3 :].strip())
    assert argv[0] == "python"
    argv[0] = sys.executable
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYSOPS_", "OTEL_"))}
    agent = subprocess.Popen(
        [sys.executable, "-m", "otel_sysops", "run", "--interval", "1", "--set", f"prometheus.port={port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        code = None
        while time.monotonic() < deadline:
            check = subprocess.run(
                argv,
                env={**env, "SYSOPS_PROMETHEUS__PORT": str(port)},
                capture_output=True,
                timeout=10,
                check=False,
            )
            code = check.returncode
            if code == 0:
                break
            time.sleep(0.3)
        assert code == 0
    finally:
        agent.terminate()
        agent.wait(timeout=15)
    dead = subprocess.run(
        argv, env={**env, "SYSOPS_PROMETHEUS__PORT": str(port)}, capture_output=True, timeout=10, check=False
    )
    assert dead.returncode != 0
