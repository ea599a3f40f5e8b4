"""`[logs]` settings (environment, validation, the CLI's one-line error) and the `sysops.log.*` counters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from otel_sysops.agent import Agent
from otel_sysops.app import log_service
from otel_sysops.cli import main
from otel_sysops.errors import ConfigError
from otel_sysops.settings import Settings, load_settings
from tests.points import number_points

OOM = "Out of memory: Killed process 4242 (java) total-vm:1kB"


def test_files_come_from_the_environment_as_a_json_list(make_settings: Callable[..., Settings]) -> None:
    settings = load_settings(None, None, environ={"SYSOPS_LOGS__FILES": '["/var/log/a.log", "/srv/b.log"]'})
    assert settings.logs.files == [Path("/var/log/a.log"), Path("/srv/b.log")]
    assert make_settings().logs.files is None  # detect


def test_custom_patterns_from_a_file(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    config = tmp_path / "sysops.toml"
    config.write_text(
        """
[logs]
kmsg = false
[[logs.patterns]]
name = "sshd_fail"
regex = 'Failed password for (?P<user>\\S+) from (?P<ip>\\S+)'
severity = "critical"
message = "{user} from {ip}"
keywords = ["Failed password"]
key = ["user"]
"""
    )
    settings = load_settings(config, None, environ={})
    (pattern,) = settings.logs.patterns
    assert (pattern.name, pattern.severity, pattern.key) == ("sshd_fail", "critical", ["user"])


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        ('name = "broken"\nregex = "(unclosed"', "pattern 'broken': invalid regex: missing )"),
        ('name = "loud"\nregex = "x"\nseverity = "loudest"', "pattern 'loud': unknown severity 'loudest'"),
        ('name = "tpl"\nregex = "x"\nmessage = "{victim}"', "pattern 'tpl': message uses {victim}"),
        ('name = "oom_kill"\nregex = "x"', "pattern 'oom_kill': name already used"),
        # RE2 refuses what needs backtracking: the reason is in the line, not a crash at the first match.
        ("name = \"backref\"\nregex = '(?P<w>\\w+) \\1'", "pattern 'backref': invalid regex: invalid escape"),
        ("name = \"ahead\"\nregex = 'foo(?=bar)'", "pattern 'ahead': invalid regex: invalid perl operator"),
    ],
)
def test_a_bad_pattern_is_one_line_naming_it_and_exit_2(
    tmp_path: Path,
    toml: str,
    error: str,
    make_settings: Callable[..., Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "sysops.toml"
    config.write_text(f"[[logs.patterns]]\n{toml}\n")
    with pytest.raises(ConfigError, match=r"^logs(\.patterns\.0)? in "):
        load_settings(config, None, environ={})
    assert main(["config", "check", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert error in err


def test_unknown_disabled_pattern_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ConfigError, match="unknown pattern 'oomkill'; accepted: conntrack_full"):
        make_settings(logs={"disabled_patterns": ["oomkill"]})


def _log_points(agent: Agent) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    result = agent.pipeline.tick()
    return {
        (m.name, tuple(sorted((k, str(v)) for k, v in (p.attributes or {}).items()))): float(p.value)
        for m, p in number_points(result.data)
        if m.name.startswith("sysops.log.")
    }


def test_counters_are_exported_through_the_pipeline_and_survive_a_new_pipeline(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    settings = make_settings(logs={"files": [str(log)], "kmsg": False, "journal": False})
    agent = Agent(settings, service_factories=[log_service])
    service = log_service(agent.context())
    assert service is not None
    service.analyzer.feed("file", [OOM, "noise"], path=str(log))
    points = _log_points(agent)
    assert points[("sysops.log.matches", (("sysops.log.pattern", "oom_kill"),))] == 1
    assert points[("sysops.log.matches", (("sysops.log.pattern", "kernel_panic"),))] == 0
    assert points[("sysops.log.lines", (("log.file.path", str(log)), ("sysops.log.source", "file")))] == 2

    # A reload builds a new pipeline and runs every hook on it: the counts carry on.
    from otel_sysops.agent import build_pipeline

    agent.pipeline.close(1.0)
    agent.pipeline = build_pipeline(settings, agent.alerts)
    for hook in agent._pipeline_hooks:
        hook(agent.pipeline)
    service.analyzer.feed("file", [OOM], path=str(log))
    points = _log_points(agent)
    assert points[("sysops.log.matches", (("sysops.log.pattern", "oom_kill"),))] == 2
    agent.pipeline.close(1.0)


def test_max_line_length_defaults_to_4_kb_and_is_capped_at_64_kb() -> None:
    assert load_settings(None, None, environ={}).logs.max_line_length == 4096
    ok = load_settings(None, None, environ={"SYSOPS_LOGS__MAX_LINE_LENGTH": "65536"})
    assert ok.logs.max_line_length == 65536
    with pytest.raises(ConfigError, match=r"MAX_LINE_LENGTH.*65536"):
        load_settings(None, None, environ={"SYSOPS_LOGS__MAX_LINE_LENGTH": "65537"})
