"""Following a file across rotation by rename and by truncation: nothing read twice, nothing missed."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_sysops.logs import FileFollower


def _append(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        fh.write("".join(line + "\n" for line in lines))


def test_starts_at_the_end_and_reads_appended_lines(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    _append(log, "old 1", "old 2")
    follower = FileFollower(log)
    assert follower.poll() == []
    _append(log, "new 1", "new 2")
    assert follower.poll() == ["new 1", "new 2"]
    assert follower.poll() == []


def test_an_unfinished_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    follower = FileFollower(log)
    follower.poll()
    with log.open("a") as fh:
        fh.write("half a li")
    assert follower.poll() == []
    _append(log, "ne")
    assert follower.poll() == ["half a line"]


def test_rotation_by_rename_drains_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("before start\n")
    follower = FileFollower(log)
    follower.poll()
    # The writer keeps its descriptor: lines land in the old file after the rename.
    with log.open("a") as writer:
        writer.write("a\n")
        writer.flush()
        log.rename(tmp_path / "syslog.1")
        writer.write("b, written after the rename\n")
        writer.flush()
    assert follower.poll() == ["a", "b, written after the rename"]  # no new file yet
    with log.open("a") as writer:  # the writer reopens its file (HUP)
        writer.write("c\n")
    _append(tmp_path / "syslog.1", "d, a late write to the old file")
    assert follower.poll() == ["d, a late write to the old file", "c"]
    assert follower.rotations == 1
    _append(log, "e")
    assert follower.poll() == ["e"]


def test_rotation_by_rename_with_the_new_file_already_written(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    follower = FileFollower(log)
    _append(log, "1", "2")
    log.rename(tmp_path / "syslog.1")
    _append(log, "3", "4")
    assert follower.poll() == ["1", "2", "3", "4"]


def test_rotation_by_truncation(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("x" * 100 + "\n")
    follower = FileFollower(log)
    _append(log, "before")
    assert follower.poll() == ["before"]
    os.truncate(log, 0)  # copytruncate
    _append(log, "after")
    assert follower.poll() == ["after"]
    assert follower.truncations == 1


def test_truncation_hidden_by_a_larger_rewrite_is_still_seen(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    follower = FileFollower(log)
    _append(log, "short")
    assert follower.poll() == ["short"]
    os.truncate(log, 0)
    _append(log, "a much longer line than before", "and another")  # size now past our position
    assert follower.poll() == ["a much longer line than before", "and another"]


def test_a_file_created_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    follower = FileFollower(log)
    assert follower.poll() == []
    _append(log, "first")
    assert follower.poll() == ["first"]


def test_an_endless_line_is_cut_and_invalid_utf8_replaced(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    follower = FileFollower(log, max_line=10)
    with log.open("ab") as fh:
        fh.write(b"x" * 25)  # no newline yet: memory held for it is bounded by max_line
    assert follower.poll() == ["x" * 10]
    with log.open("ab") as fh:
        fh.write(b"yyy\nok \xff\n")  # the rest of the cut line is dropped
    assert follower.poll() == ["ok \ufffd"]


class _Writer:
    """A syslog daemon: appends through its own descriptor; logrotate renames or truncates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fh = path.open("a")
        self.n = 0
        self.expected: list[str] = []
        self.unread: list[str] = []  # written to the current file since the last poll
        self.renamed_since_poll = False

    def write(self, count: int) -> None:
        for _ in range(count):
            self.n += 1
            line = f"line {self.n:06d} " + "x" * (self.n % 7)
            self.fh.write(line + "\n")
            self.expected.append(line)
            self.unread.append(line)
        self.fh.flush()

    def rename(self) -> None:
        os.replace(self.path, self.path.with_suffix(".1"))
        self.renamed_since_poll = True

    def reopen(self) -> None:
        self.fh.close()
        self.fh = self.path.open("a")
        self.unread = []

    def truncate(self) -> None:
        # copytruncate loses what was written after the reader's last look: no reader can have it.
        for line in self.unread:
            self.expected.remove(line)
        self.unread = []
        self.fh.truncate(0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(["write", "poll", "rename", "truncate"]), st.integers(1, 40)), max_size=30
    )
)
def test_random_rotations_lose_and_repeat_nothing(tmp_path: Path, ops: list[tuple[str, int]]) -> None:
    for old in tmp_path.iterdir():
        old.unlink()
    log = tmp_path / "syslog"
    log.write_text("written before the agent started\n")
    writer = _Writer(log)
    follower = FileFollower(log)
    got: list[str] = []

    def poll() -> None:
        got.extend(follower.poll())
        writer.unread = []
        writer.renamed_since_poll = False

    poll()
    for op, count in ops:
        if op == "write":
            writer.write(count)
        elif op == "poll":
            poll()
        elif op == "rename":
            if writer.renamed_since_poll:
                poll()  # two renames between looks would skip a whole file: logrotate is not that fast
            writer.rename()
            writer.write(count % 3)  # lines the daemon writes to the old file before its HUP
            writer.reopen()
        elif op == "truncate" and log.exists():
            writer.truncate()
    poll()
    writer.fh.close()
    follower.close()
    assert got == writer.expected


def test_a_backlog_is_read_budget_by_budget_in_order(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text("")
    follower = FileFollower(log, budget=100)
    lines = [f"line {i:04d} " + "y" * 20 for i in range(50)]  # 30 bytes each, 1500 in all
    _append(log, *lines)
    got: list[str] = []
    polls = 0
    while True:
        got.extend(follower.poll())
        polls += 1
        if not follower.behind:
            break
    assert got == lines
    assert polls >= 1500 // 100
    log.rename(tmp_path / "syslog.1")
    _append(log, *lines[:10])
    got = []
    while not got or follower.behind:
        got.extend(follower.poll())
    assert got == lines[:10]
