"""Plugins come from entry points; one that cannot run here is skipped with one INFO line."""

from __future__ import annotations

import errno
import gc
import logging
import weakref
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Protocol

import pytest

from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.plugin import INSTRUMENTATION_GROUP, TickFiles, load_plugins, read_text_file


class Plugin(Protocol):
    """What the test plugins are: a class built from its entry point's name."""

    def __init__(self, name: str) -> None: ...


def build(name: str, cls: type[Plugin]) -> Plugin:
    return cls(name)


class Works:
    def __init__(self, name: str) -> None:
        self.name = name


class Unavailable:
    def __init__(self, name: str) -> None:
        raise CollectorUnavailableError("no such device on this host")


class Crashes:
    def __init__(self, name: str) -> None:
        raise RuntimeError("bug in a third-party plugin")


def ep(name: str, target: str) -> EntryPoint:
    return EntryPoint(name, f"tests.test_plugins:{target}", "test.group")


def test_unavailable_broken_and_missing_plugins_are_skipped_with_one_line_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="otel_sysops.plugin")
    available = [
        ep("ok", "Works"),
        ep("absent", "Unavailable"),
        ep("buggy", "Crashes"),
        EntryPoint("gone", "tests.no_such_module:X", "test.group"),
    ]
    plugins = load_plugins("test.group", build, available=available)
    assert list(plugins) == ["ok"]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "plugin absent skipped: no such device on this host") in lines
    assert ("WARNING", "plugin buggy failed to start: RuntimeError: bug in a third-party plugin") in lines
    assert any(
        level == "WARNING" and msg.startswith("plugin gone (tests.no_such_module:X) cannot be loaded")
        for level, msg in lines
    )
    assert len(lines) == 3
    skipped: dict[str, str] = {}
    load_plugins("test.group", build, available=available, skipped=skipped)
    assert skipped["absent"] == "no such device on this host"
    assert skipped["buggy"] == "failed to start: RuntimeError: bug in a third-party plugin"
    assert skipped["gone"].startswith("cannot be loaded: ")
    assert set(skipped) == {"absent", "buggy", "gone"}


def test_enabled_and_disabled_select_by_entry_point_name(caplog: pytest.LogCaptureFixture) -> None:
    available = [ep("a", "Works"), ep("b", "Works"), ep("c", "Works")]
    assert list(load_plugins("g", build, enabled=["a", "c"], disabled=["c"], available=available)) == ["a"]
    load_plugins("g", build, enabled=["zzz"], available=available)
    assert "plugin zzz is enabled in the settings but not installed" in caplog.text


def test_the_core_collectors_are_installed_as_entry_points() -> None:
    names = {e.name for e in entry_points(group=INSTRUMENTATION_GROUP)}
    assert {"cpu", "memory"} <= names


class _Marker:
    """Something a tick's frame holds (as the pipeline's tick holds its collection)."""


def test_a_missing_file_leaves_no_reference_cycle(tmp_path: Path) -> None:
    """Reading a missing file (twice: read, then from the tick cache) must not keep the frames on
    the stack alive once the tick is over: they would wait for the cyclic GC."""
    files = TickFiles()
    missing = tmp_path / "absent"
    errors: list[tuple[type[OSError], int | None, str | None]] = []

    def tick() -> weakref.ref[_Marker]:
        marker = _Marker()
        for _ in range(2):
            try:
                files.read_text(missing)
            except FileNotFoundError as exc:
                errors.append((type(exc), exc.errno, exc.filename))
        return weakref.ref(marker)

    enabled = gc.isenabled()
    gc.disable()
    try:
        held = tick()
        files.clear()
        assert held() is None
    finally:
        if enabled:
            gc.enable()
    assert errors == [(FileNotFoundError, errno.ENOENT, str(missing))] * 2


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"cpu  1 2 3\n",
        b"a\r\nb\rc\n\r",
        b"\xff\xfe bad utf-8 \xc3",
        b"x" * 70_000 + b"\r\n" + b"y" * 70_000,
    ],
)
def test_raw_reads_give_what_text_mode_gives(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(content)
    assert read_text_file(path) == path.read_text(encoding="utf-8", errors="replace")


def test_raw_reads_of_proc_files_and_their_errors(tmp_path: Path) -> None:
    for name in ("/proc/self/status", "/proc/self/mountinfo", "/proc/self/net/dev", "/proc/self/stat"):
        raw, text = read_text_file(name), Path(name).read_text(encoding="utf-8", errors="replace")
        assert raw.splitlines()[0] == text.splitlines()[0]  # live files: the lines' shape, not values
        assert len(raw.splitlines()) == len(text.splitlines())
    with pytest.raises(FileNotFoundError) as missing:
        read_text_file(tmp_path / "absent")
    assert missing.value.filename == str(tmp_path / "absent")
    with pytest.raises(IsADirectoryError):
        read_text_file(tmp_path)
