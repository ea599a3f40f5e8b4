"""Filesystems: the fixture's mountinfo with a statvfs table behind the Statvfs protocol; a hung
mount that never answers; live usage against psutil."""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from instrumentation._linux.mountinfo import parse_mountinfo
from instrumentation.cpu import CpuCollector
from instrumentation.disk import DiskCollector
from instrumentation.filesystem import FilesystemCollector
from instrumentation.memory import MemoryCollector
from tests.instrumentation.conftest import Build, Host, add, errors, key, of, points

MP = "system.filesystem.mountpoint"
STATE = "system.filesystem.state"


def statvfs_result(
    frsize: int, blocks: int, bfree: int, bavail: int, files: int, ffree: int
) -> os.statvfs_result:
    # statvfs(3) field order: bsize frsize blocks bfree bavail files ffree favail flag namemax
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


class FakeStatvfs:
    """statvfs over a table of mountpoints under a host root; paths in `hung` never answer until released."""

    def __init__(self, root: Path, table: dict[str, os.statvfs_result], hung: set[str] | None = None) -> None:
        self.root = root
        self.table = table
        self.hung = hung or set()
        self.release = threading.Event()
        self.calls: Counter[str] = Counter()

    def __call__(self, path: str, /) -> os.statvfs_result:
        mountpoint = "/" + os.path.relpath(path, self.root).removeprefix(".")
        mountpoint = mountpoint.replace("//", "/")
        self.calls[mountpoint] += 1
        if mountpoint in self.hung:
            self.release.wait()  # a dead NFS server: blocks until the test ends
        if mountpoint not in self.table:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.table[mountpoint]


TABLE = {
    "/": statvfs_result(4096, 1_000_000, 400_000, 350_000, 655_360, 600_000),
    "/boot": statvfs_result(1024, 500_000, 300_000, 275_000, 128_000, 127_000),
    "/data": statvfs_result(4096, 2_000_000, 1_500_000, 1_500_000, 1_000_000, 990_000),
    "/mnt/nfs": statvfs_result(1_048_576, 10_000, 5_000, 5_000, 100_000, 50_000),
    "/mnt/usb stick": statvfs_result(4096, 1000, 250, 250, 0, 0),  # vfat: no inode table
    "/run": statvfs_result(4096, 1_600_000, 1_599_000, 1_599_000, 8_000_000, 7_999_000),
    "/run/user/1000": statvfs_result(4096, 1_600_000, 1_600_000, 1_600_000, 1_638_400, 1_638_380),
}


@pytest.fixture
def fake(numa_host: Host) -> Iterator[FakeStatvfs]:
    fake = FakeStatvfs(numa_host.root, TABLE)
    yield fake
    fake.release.set()


def test_mounts_selected_deduplicated_and_measured(
    numa_host: Host, pipeline_for: Build, fake: FakeStatvfs
) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    values = points(pipe.tick().data)
    limits = {dict(a)[MP]: v for a, v in of(values, "system.filesystem.limit").items()}
    # Pseudo filesystems, /dev, /sys, squashfs and the docker overlay are out; /srv/export is a
    # bind mount of /data's device and collapses into /data.
    assert set(limits) == {"/", "/boot", "/data", "/mnt/nfs", "/mnt/usb stick", "/run", "/run/user/1000"}
    assert limits["/"] == 1_000_000 * 4096
    root = {
        "system.device": "/dev/sda2",
        MP: "/",
        "system.filesystem.type": "ext4",
        "system.filesystem.mode": "rw",
    }
    assert values[key("system.filesystem.usage", **root, **{STATE: "used"})] == 600_000 * 4096
    assert values[key("system.filesystem.usage", **root, **{STATE: "free"})] == 350_000 * 4096
    assert values[key("system.filesystem.usage", **root, **{STATE: "reserved"})] == 50_000 * 4096
    assert values[key("system.filesystem.utilization", **root)] == pytest.approx(600_000 / 950_000)
    assert values[key("sysops.filesystem.inodes.usage", **root, **{STATE: "used"})] == 55_360
    assert values[key("sysops.filesystem.inodes.usage", **root, **{STATE: "free"})] == 600_000
    assert values[key("sysops.filesystem.inodes.utilization", **root)] == pytest.approx(55_360 / 655_360)
    usb = {
        "system.device": "/dev/sdb1",
        MP: "/mnt/usb stick",
        "system.filesystem.type": "vfat",
        "system.filesystem.mode": "ro",
    }
    assert values[key("system.filesystem.utilization", **usb)] == 0.75
    assert key("sysops.filesystem.inodes.utilization", **usb) not in values
    nfs = {
        dict(a)["system.device"] for a in of(values, "system.filesystem.limit") if dict(a)[MP] == "/mnt/nfs"
    }
    assert nfs == {"fileserver:/export"}
    assert errors(pipe, "filesystem") == {}


def test_patterns_select_mounts(numa_host: Host, pipeline_for: Build, fake: FakeStatvfs) -> None:
    pipe, settings = pipeline_for(
        numa_host,
        instrumentation={
            "filesystem": {"exclude_types": ["^(tmpfs|nfs4)$"], "include_mountpoints": ["^/(boot|run)"]}
        },
    )
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    values = points(pipe.tick().data)
    assert {dict(a)[MP] for a in of(values, "system.filesystem.limit")} == {"/boot"}


def test_hung_mount_is_skipped_and_everything_else_is_collected(
    numa_host: Host, pipeline_for: Build, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeStatvfs(numa_host.root, TABLE, hung={"/mnt/nfs"})
    try:
        pipe, settings = pipeline_for(numa_host, instrumentation={"filesystem": {"timeout": 0.2}})
        add(pipe, settings, "cpu", CpuCollector)
        add(pipe, settings, "memory", MemoryCollector)
        add(pipe, settings, "disk", DiskCollector)
        fs = add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
        with caplog.at_level(logging.WARNING, logger="instrumentation.filesystem"):
            results = [pipe.tick() for _ in range(3)]
        for result in results:
            assert result.failed == {}
            values = points(result.data)
            mounts = {dict(a)[MP] for a in of(values, "system.filesystem.limit")}
            assert mounts == {"/", "/boot", "/data", "/mnt/usb stick", "/run", "/run/user/1000"}
            assert values[key("system.memory.limit")] == 65_536_000 * 1024
            assert values[key("system.cpu.logical.count")] == 8
            assert values[key("system.disk.io_time", **{"system.device": "sda"})] == 9.0
        # One call stuck, none piled up behind it; one warning.
        assert fake.calls["/mnt/nfs"] == 1
        assert fake.calls["/"] == 3
        assert fs.hung == ["/mnt/nfs"]
        hung_logs = [r for r in caplog.records if "/mnt/nfs" in r.getMessage()]
        assert len(hung_logs) == 1
        assert errors(pipe, "filesystem") == {"hung_mount": 3}
        # The server comes back: the stuck call returns and the mount is measured again.
        fake.release.set()
        fake.hung.clear()
        for _ in range(100):
            if not fs.hung:
                break
            threading.Event().wait(0.01)
        values = points(pipe.tick().data)
        assert "/mnt/nfs" in {dict(a)[MP] for a in of(values, "system.filesystem.limit")}
        assert fake.calls["/mnt/nfs"] == 2
    finally:
        fake.release.set()


def test_statvfs_errors_skip_the_mount_and_are_counted(numa_host: Host, pipeline_for: Build) -> None:
    table = {k: v for k, v in TABLE.items() if k != "/boot"}
    fake = FakeStatvfs(numa_host.root, table)
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    values = points(pipe.tick().data)
    assert "/boot" not in {dict(a)[MP] for a in of(values, "system.filesystem.limit")}
    assert "/" in {dict(a)[MP] for a in of(values, "system.filesystem.limit")}
    assert errors(pipe, "filesystem") == {"statvfs": 1}


def _mountinfo_devices(host: Host) -> dict[str, int]:
    """A second reading of the fixture: mountpoint -> device number from field 3 of mountinfo."""
    out = {}
    for line in (host.procfs / "1" / "mountinfo").read_text().splitlines():
        fields = line.split()
        major, minor = fields[2].split(":")
        out[fields[4].replace("\\040", " ")] = os.makedev(int(major), int(minor))
    return out


def test_a_directory_that_is_not_the_mount_is_skipped_and_counted(
    numa_host: Host, pipeline_for: Build, fake: FakeStatvfs
) -> None:
    devices = _mountinfo_devices(numa_host)

    def device_of(path: str) -> int:
        # Without mount propagation, /data under the host root is a plain directory of "/".
        mountpoint = "/" + os.path.relpath(path, numa_host.root).removeprefix(".")
        mountpoint = mountpoint.replace("//", "/")
        return devices["/"] if mountpoint == "/data" else devices[mountpoint]

    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake, device_of=device_of)
    for tick in (1, 2):
        mounts = {dict(a)[MP] for a in of(points(pipe.tick().data), "system.filesystem.limit")}
        assert "/data" not in mounts
        assert {"/", "/boot", "/mnt/nfs", "/run"} <= mounts
        assert errors(pipe, "filesystem") == {"device_mismatch": tick}


def test_falls_back_to_self_mountinfo_and_warns_once(
    numa_host: Host, pipeline_for: Build, fake: FakeStatvfs, caplog: pytest.LogCaptureFixture
) -> None:
    (numa_host.procfs / "self").mkdir()
    (numa_host.procfs / "1" / "mountinfo").rename(numa_host.procfs / "self" / "mountinfo")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    with caplog.at_level(logging.WARNING, logger="instrumentation.filesystem"):
        assert of(points(pipe.tick().data), "system.filesystem.limit")
        pipe.tick()
    assert len([r for r in caplog.records if "container's view" in r.getMessage()]) == 1


def test_container_overlay_root_warns_once(
    numa_host: Host, pipeline_for: Build, fake: FakeStatvfs, caplog: pytest.LogCaptureFixture
) -> None:
    path = numa_host.procfs / "1" / "mountinfo"
    path.write_text(path.read_text() + "90 26 0:99 / / rw,relatime - overlay overlay rw,lowerdir=/l\n")
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    with caplog.at_level(logging.WARNING, logger="instrumentation.filesystem"):
        pipe.tick()
        pipe.tick()
    assert len([r for r in caplog.records if "container's view" in r.getMessage()]) == 1


def test_host_mount_table_does_not_warn(
    numa_host: Host, pipeline_for: Build, fake: FakeStatvfs, caplog: pytest.LogCaptureFixture
) -> None:
    pipe, settings = pipeline_for(numa_host)
    add(pipe, settings, "filesystem", FilesystemCollector, statvfs=fake)
    with caplog.at_level(logging.WARNING, logger="instrumentation.filesystem"):
        pipe.tick()
    assert not caplog.records


def test_live_usage_agrees_with_psutil(pipeline_for: Build) -> None:
    pipe, settings = pipeline_for(None)
    add(pipe, settings, "filesystem", FilesystemCollector)
    values = points(pipe.tick().data)
    ours = {dict(a)[MP]: a for a in of(values, "system.filesystem.limit")}
    assert "/" in ours
    theirs = psutil.disk_usage("/")
    attrs = dict(ours["/"])
    assert values[key("system.filesystem.limit", **attrs)] == theirs.total
    used = values[key("system.filesystem.usage", **attrs, **{STATE: "used"})]
    assert used == pytest.approx(theirs.used, abs=64 * 2**20)
    assert values[key("system.filesystem.utilization", **attrs)] == pytest.approx(
        theirs.percent / 100, abs=0.01
    )


def test_parse_mountinfo_fields_and_escapes() -> None:
    info = parse_mountinfo(
        "35 26 8:17 / /mnt/usb\\040stick ro,nosuid shared:43 master:2 - vfat /dev/sdb1 ro\nbad line\n"
    )
    (mount,) = info.mounts
    assert (mount.mountpoint, mount.device, mount.fstype, mount.source) == (
        "/mnt/usb stick",
        "8:17",
        "vfat",
        "/dev/sdb1",
    )
    assert mount.read_only
    assert info.malformed == 1


@given(st.text(), st.integers(min_value=0, max_value=300))
def test_parse_mountinfo_never_raises_even_truncated(text: str, cut: int) -> None:
    parse_mountinfo(text)
    real = "30 26 259:1 / /data rw,noatime shared:31 - xfs /dev/nvme0n1p1 rw,attr2\n"
    parse_mountinfo(real[: cut % (len(real) + 1)])
