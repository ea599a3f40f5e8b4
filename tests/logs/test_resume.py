"""A followed file's position survives a restart: lines written while the agent was down are read,
nothing is read twice, and a file rotated or truncated meanwhile is read from its start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from otel_sysops.logs._service import LogService
from otel_sysops.logs._sources import FileSource

from .helpers import eventually
from .test_sources import OOM, _analyzer, _append, _run_service


def _line(pid: int, name: str) -> str:
    return "Nov 22 03:17:42 web-01 kernel: " + OOM.format(pid=pid, name=name)


def _follow_once(log: Path, state: Path, expect: list[str]) -> list[str]:
    """Run one agent lifetime: a file source with `state` as its state directory, until the
    victims seen are `expect` (and a few polls more: nothing else comes)."""
    analyzer, sink = _analyzer()
    source = FileSource(analyzer, log, poll_interval=0.02, state_dir=state)

    async def body() -> None:
        # Read to the end of the file (the lines of a poll are matched before it returns; the
        # shutdown waits for a poll in progress), then stop.
        assert await eventually(lambda: source.follower.position == log.stat().st_size)
        assert await eventually(lambda: sink.victims() == expect)

    _run_service(LogService(analyzer, [source]), body)
    return sink.victims()


def test_lines_written_while_the_agent_was_down_are_read_after_a_restart(tmp_path: Path) -> None:
    log, state = tmp_path / "syslog", tmp_path / "state"
    _append(log, _line(1, "before_first_start"))
    assert _follow_once(log, state, []) == []  # first start: from the end
    _append(log, _line(2, "while_down"), _line(3, "also_down"))
    assert _follow_once(log, state, ["while_down", "also_down"]) == ["while_down", "also_down"]
    assert _follow_once(log, state, []) == []  # nothing read twice
    (saved,) = state.iterdir()
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_an_unfinished_line_at_shutdown_is_read_whole_after_the_restart(tmp_path: Path) -> None:
    log, state = tmp_path / "syslog", tmp_path / "state"
    log.write_text("")
    with log.open("a") as fh:
        fh.write(_line(4, "half")[:30])
    assert _follow_once(log, state, []) == []
    with log.open("a") as fh:
        fh.write(_line(4, "half")[30:] + "\n")
    assert _follow_once(log, state, ["half"]) == ["half"]


def test_a_file_rotated_while_down_is_read_from_the_start_of_the_new_one(tmp_path: Path) -> None:
    log, state = tmp_path / "syslog", tmp_path / "state"
    _append(log, _line(1, "old"))
    assert _follow_once(log, state, []) == []
    log.rename(tmp_path / "syslog.1")
    _append(log, _line(5, "after_rotation"))
    assert _follow_once(log, state, ["after_rotation"]) == ["after_rotation"]


def test_a_file_truncated_while_down_is_read_from_its_start(tmp_path: Path) -> None:
    log, state = tmp_path / "syslog", tmp_path / "state"
    _append(log, _line(1, "old"), _line(2, "older"))
    assert _follow_once(log, state, []) == []
    os.truncate(log, 0)
    _append(log, _line(6, "rewritten"))
    assert _follow_once(log, state, ["rewritten"]) == ["rewritten"]


def test_a_corrupt_position_file_means_the_end_of_the_file(tmp_path: Path) -> None:
    log, state = tmp_path / "syslog", tmp_path / "state"
    _append(log, _line(1, "old"))
    assert _follow_once(log, state, []) == []
    (saved,) = state.iterdir()
    saved.write_text("{not json")
    _append(log, _line(2, "unknown_position"))
    assert _follow_once(log, state, []) == []
    _append(log, _line(3, "new"))
    assert _follow_once(log, state, ["new"]) == ["new"]
