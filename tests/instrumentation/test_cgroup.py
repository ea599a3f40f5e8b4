"""cgroup collector: a frozen cgroup v2 tree through the real pipeline, the group bound, a hybrid
host, a v1-only host, groups vanishing, and the parsers under random input."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrumentation._linux.cgroup import parse_flat_keyed, parse_io_stat, parse_single
from instrumentation._linux.pressure import PressureLine, parse_pressure
from instrumentation.cgroup import CgroupCollector
from otel_sysops.errors import CollectorUnavailableError
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from tests.conftest import FIXTURES

from ._collect import a, names, pipeline_with, points

HOST = FIXTURES / "cgroup2-host"
HYBRID = FIXTURES / "cgroup-hybrid"
ROOT = HOST / "fs" / "cgroup"


def _cgroups(settings: Settings) -> tuple[Pipeline, CgroupCollector]:
    pipe, collector = pipeline_with(settings, "cgroup", CgroupCollector)
    assert isinstance(collector, CgroupCollector)
    return pipe, collector


def _paths(values: dict[frozenset[tuple[str, object]], float]) -> set[object]:
    return {dict(k)["sysops.cgroup.path"] for k in values}


def test_fixture_groups_and_exact_values(make_settings: Callable[..., Settings]) -> None:
    pipe, collector = _cgroups(make_settings(sysfs=str(HOST)))
    assert not collector.hybrid
    assert collector.groups() == [
        "/",
        "/kubepods.slice",
        "/system.slice",
        "/user.slice",
        "/kubepods.slice/kubepods-burstable.slice",
        "/system.slice/nginx.service",
        "/system.slice/postgresql.service",
        "/user.slice/user-1000.slice",
    ]
    data = pipe.tick().data
    nginx = "/system.slice/nginx.service"
    cpu = points(data, "sysops.cgroup.cpu.time")
    assert cpu[a(sysops__cgroup__path=nginx, cpu__mode="user")] == 1.5
    assert cpu[a(sysops__cgroup__path=nginx, cpu__mode="system")] == 0.5
    assert cpu[a(sysops__cgroup__path="/", cpu__mode="user")] == 6.0
    assert len(cpu) == 16  # 8 groups, init.scope is not one of them
    assert points(data, "sysops.cgroup.cpu.throttled.time")[a(sysops__cgroup__path=nginx)] == 0.35
    assert points(data, "sysops.cgroup.cpu.throttled.periods")[a(sysops__cgroup__path=nginx)] == 7
    usage = points(data, "sysops.cgroup.memory.usage")
    assert usage[a(sysops__cgroup__path=nginx)] == 104857600
    assert "/" not in _paths(usage)  # the root has no memory.current
    assert (
        points(data, "sysops.cgroup.memory.working_set")[a(sysops__cgroup__path=nginx)] == 104857600 - 5000000
    )
    assert points(data, "sysops.cgroup.memory.rss")[a(sysops__cgroup__path=nginx)] == 80000000
    assert points(data, "sysops.cgroup.memory.file")[a(sysops__cgroup__path=nginx)] == 20000000
    # memory.max is "max" everywhere else: no limit point.
    assert points(data, "sysops.cgroup.memory.limit") == {
        a(sysops__cgroup__path=nginx): 536870912,
        a(sysops__cgroup__path="/kubepods.slice"): 4294967296,
    }
    faults = points(data, "sysops.cgroup.paging.faults")
    assert faults[a(sysops__cgroup__path="/system.slice", system__paging__fault__type="major")] == 25
    assert faults[a(sysops__cgroup__path="/system.slice", system__paging__fault__type="minor")] == 9975
    io = points(data, "sysops.cgroup.disk.io")
    # Summed over devices 8:0 and 253:0.
    assert io[a(sysops__cgroup__path="/system.slice", disk__io__direction="read")] == 1048576 + 1024
    assert io[a(sysops__cgroup__path="/system.slice", disk__io__direction="write")] == 2097152
    assert io[a(sysops__cgroup__path="/user.slice", disk__io__direction="read")] == 0  # empty io.stat
    ops = points(data, "sysops.cgroup.disk.operations")
    assert ops[a(sysops__cgroup__path="/system.slice", disk__io__direction="read")] == 101
    assert ops[a(sysops__cgroup__path=nginx, disk__io__direction="write")] == 2
    stall = points(data, "sysops.cgroup.pressure.stall.time")

    def psi(path: str, resource: str, kind: str) -> float:
        return stall[
            a(sysops__cgroup__path=path, sysops__pressure__resource=resource, sysops__pressure__kind=kind)
        ]

    assert psi("/system.slice", "cpu", "some") == 1.5
    assert psi("/system.slice", "memory", "full") == pytest.approx(0.001)
    assert psi("/system.slice", "io", "full") == 0.25
    assert psi("/", "io", "some") == 0.2
    assert not any(
        dict(k)["sysops.cgroup.path"] == "/" and dict(k)["sysops.pressure.resource"] == "memory"
        for k in stall
    )
    assert "sysops.cgroup.cpu.usage" not in names(data)  # needs two ticks
    # nginx's io.stat has one line that is not a device.
    assert pipe.errors.snapshot() == {("cgroup", "malformed_line"): 1}
    pipe.close(1.0)


def test_group_bound_children_and_root_settings(make_settings: Callable[..., Settings]) -> None:
    _, bounded = _cgroups(make_settings(sysfs=str(HOST), instrumentation={"cgroup": {"max_groups": 3}}))
    assert bounded.groups() == ["/", "/kubepods.slice", "/system.slice"]
    _, tops = _cgroups(
        make_settings(sysfs=str(HOST), instrumentation={"cgroup": {"children": False, "include_root": False}})
    )
    assert tops.groups() == ["/kubepods.slice", "/system.slice", "/user.slice"]
    _, chosen = _cgroups(
        make_settings(sysfs=str(HOST), instrumentation={"cgroup": {"groups": ["init.scope"]}})
    )
    assert chosen.groups() == ["/", "/init.scope"]


def test_cpu_usage_and_vanishing_groups(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    shutil.copytree(HOST, tmp_path, dirs_exist_ok=True)
    root = tmp_path / "fs" / "cgroup"
    pipe, _ = _cgroups(make_settings(sysfs=str(tmp_path)))
    pipe.tick()
    stat = root / "system.slice" / "cpu.stat"
    stat.write_text(stat.read_text().replace("usage_usec 4000000", "usage_usec 4100000"))
    shutil.rmtree(root / "system.slice" / "postgresql.service")
    # A file that cannot be read (here a directory in its place): that item is skipped and counted.
    (root / "user.slice" / "memory.stat").unlink()
    (root / "user.slice" / "memory.stat").mkdir()
    data = pipe.tick().data
    assert pipe.errors.snapshot()[("cgroup", "read_error")] == 1
    assert "/user.slice" not in _paths(points(data, "sysops.cgroup.memory.rss"))
    assert "/user.slice" in _paths(points(data, "sysops.cgroup.memory.usage"))
    usage = points(data, "sysops.cgroup.cpu.usage")
    assert usage[a(sysops__cgroup__path="/system.slice")] > 0
    assert usage[a(sysops__cgroup__path="/user.slice")] == 0
    assert "/system.slice/postgresql.service" not in _paths(points(data, "sysops.cgroup.cpu.time"))
    assert "/system.slice/postgresql.service" not in _paths(usage)
    pipe.close(1.0)


def test_hybrid_host_reports_cpu_and_pressure(make_settings: Callable[..., Settings]) -> None:
    pipe, collector = _cgroups(make_settings(sysfs=str(HYBRID)))
    assert collector.hybrid
    data = pipe.tick().data
    assert points(data, "sysops.cgroup.cpu.time") == {
        a(sysops__cgroup__path="/", cpu__mode="user"): 405.242224,
        a(sysops__cgroup__path="/", cpu__mode="system"): 73.486573,
    }
    assert points(data, "sysops.cgroup.pressure.stall.time")[
        a(sysops__cgroup__path="/", sysops__pressure__resource="cpu", sysops__pressure__kind="some")
    ] == pytest.approx(177.47116)
    assert "sysops.cgroup.memory.usage" not in names(data)
    pipe.close(1.0)


def test_cgroup_v1_only_is_unavailable(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    (tmp_path / "fs" / "cgroup" / "memory").mkdir(parents=True)
    with pytest.raises(CollectorUnavailableError, match="cgroup v1 only"):
        _cgroups(make_settings(sysfs=str(tmp_path)))


def test_cgroup_parser_literals() -> None:
    assert parse_flat_keyed("a 1\nb x\nc 1 2\nd -4\n").values == {"a": 1}
    io = parse_io_stat("8:0 rbytes=1 wbytes=2 rios=3 wios=4\n8:16 rbytes=10 dbytes=5\nx:y rbytes=1\n")
    assert io.values["rbytes"] == 11
    assert io.values["dbytes"] == 5
    assert io.malformed == 1
    assert parse_single("max\n") is None
    assert parse_single("42\n") == 42
    psi = parse_pressure("some avg10=1.00 avg60=0.50 avg300=0.10 total=77\nfull avg10=nan total=1\n")
    assert psi.lines == {"some": PressureLine({"avg10": 1.0, "avg60": 0.5, "avg300": 0.1}, 77)}
    assert psi.malformed == 1


_TEXTS = [
    (ROOT / "system.slice" / name).read_text()
    for name in ("cpu.stat", "memory.stat", "io.stat", "cpu.pressure", "memory.current")
]


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(0, 4), st.integers(0, 300))
def test_cgroup_parsers_never_raise(text: str, which: int, cut: int) -> None:
    for sample in (text, _TEXTS[which][:cut], _TEXTS[which][:cut] + text):
        parse_flat_keyed(sample)
        parse_io_stat(sample)
        parse_single(sample)
        psi = parse_pressure(sample)
        assert all(v >= 0 for line in psi.lines.values() for v in (*line.averages.values(), line.total_us))


def test_only_containers_get_container_names(tmp_path: Path, make_settings: Callable[..., Settings]) -> None:
    # A Docker container's scope next to systemd services: container.* (with container.id) for
    # it alone; the slices and services keep their figures under sysops.cgroup.*.
    host = tmp_path / "host"
    shutil.copytree(HOST, host)
    cid = "4f" * 32
    scope = host / "fs" / "cgroup" / "system.slice" / f"docker-{cid}.scope"
    shutil.copytree(ROOT / "system.slice" / "nginx.service", scope)
    pipe, _ = _cgroups(make_settings(sysfs=str(host)))
    data = pipe.tick().data
    path = f"/system.slice/docker-{cid}.scope"
    container = points(data, "container.cpu.time")
    assert container == {
        a(sysops__cgroup__path=path, container__id=cid, cpu__mode="user"): 1.5,
        a(sysops__cgroup__path=path, container__id=cid, cpu__mode="system"): 0.5,
    }
    assert points(data, "container.memory.usage") == {
        a(sysops__cgroup__path=path, container__id=cid): 104857600
    }
    cgroups = points(data, "sysops.cgroup.cpu.time")
    assert path not in _paths(cgroups)
    assert "/system.slice/nginx.service" in _paths(cgroups)
    # No series of a group that is not a container carries a container.* name.
    assert all(
        dict(k).get("container.id") == cid
        for n in names(data)
        if n.startswith("container.")
        for k in points(data, n)
    )
