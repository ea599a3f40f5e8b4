"""The host-health default rules (clock unsynchronised, link down and flapping, RAID degraded, disk
health) fire and clear through the real pipeline: the real collectors read a frozen server tree
(tests/fixtures/server2s) or recorded smartctl output, which the test changes between ticks, and
the threshold analyzer with its defaults turns the values into findings."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzers.threshold import ThresholdAnalyzer
from instrumentation.diskhealth import DiskHealthCollector
from instrumentation.mdraid import MdRaidCollector
from instrumentation.netclass import NetClassCollector
from instrumentation.timesync import TimeCollector
from otel_sysops.alerts import Finding, Severity
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import AnalyzerContext, Collector, CollectorContext
from otel_sysops.settings import Settings
from tests.conftest import FIXTURES
from tests.instrumentation.test_disk_health import RecordedSmartctl
from tests.instrumentation.test_host_coverage import RecordedTimex

from .conftest import RecordingSink


class Host:
    """A pipeline over a copy of the server tree, with the threshold analyzer and a recording sink."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root, self.settings = root, settings
        self.sink = RecordingSink()
        self.pipe = Pipeline(settings, load=False, alert_sink=self.sink)
        self.pipe.add_analyzer(
            "threshold", ThresholdAnalyzer(AnalyzerContext("threshold", settings, self.pipe.store))
        )
        self.now = 1_700_000_000.0

    def add(self, name: str, cls: type[Collector[Any]], **kwargs: Any) -> Any:
        collector = cls(CollectorContext(name, self.settings, self.pipe.files, self.pipe.errors), **kwargs)
        self.pipe.add_collector(name, collector)
        return collector

    def tick(self, step: float = 10.0) -> list[Finding]:
        self.now += step
        self.pipe.tick(timestamp=self.now)
        return self.sink.take()


@pytest.fixture
def host(tmp_path: Path, make_settings: Callable[..., Settings]) -> Iterator[Host]:
    root = tmp_path / "host"
    shutil.copytree(FIXTURES / "server2s", root)
    settings = make_settings(
        procfs=root / "proc", sysfs=root / "sys", host_root=root, interval=10.0, store={"max_series": 20_000}
    )
    made = Host(root, settings)
    yield made
    made.pipe.close(2.0)


def _events(findings: list[Finding], metric: str) -> list[tuple[Severity | None, dict[str, str]]]:
    return [(f.severity, dict(f.attributes)) for f in findings if f.metric == metric]


def test_clock_unsynchronised_for_ten_minutes_warns_then_clears(host: Host) -> None:
    source = RecordedTimex()
    host.add("time", TimeCollector, source=source)
    assert _events(host.tick(), "sysops.time.sync.status") == []
    source.status |= 0x0040  # STA_UNSYNC: the NTP daemon stopped
    fired = [(i, host.tick(60.0)) for i in range(12)]
    firing = [
        (i, _events(f, "sysops.time.sync.status")) for i, f in fired if _events(f, "sysops.time.sync.status")
    ]
    # The condition starts at tick 0 and must hold 10 minutes: ticks 60 s apart, so tick 10.
    assert firing == [(10, [(Severity.WARNING, {})])]
    source.status &= ~0x0040
    assert _events(host.tick(60.0), "sysops.time.sync.status") == [(None, {})]


def test_a_link_down_is_critical_and_clears_when_it_comes_back(host: Host) -> None:
    host.add("netclass", NetClassCollector)
    link = {"hw.id": "eth1", "hw.type": "network", "network.interface.name": "eth1"}
    ticks = [_events(host.tick(), "hw.network.up") for _ in range(5)]
    # eth1 is administratively up without carrier from the start; the rule holds for 30 s.
    assert ticks[:3] == [[], [], []]
    assert ticks[3] == [(Severity.CRITICAL, link)]
    eth1 = host.root / "sys" / "class" / "net" / "eth1"
    (eth1 / "carrier").write_text("1\n")
    (eth1 / "operstate").write_text("up\n")
    assert _events(host.tick(), "hw.network.up") == [(None, link)]


def test_a_flapping_link_warns_and_clears_once_the_changes_leave_the_window(host: Host) -> None:
    clock = [5000.0]
    host.add("netclass", NetClassCollector, clock=lambda: clock[0])
    changes = host.root / "sys" / "class" / "net" / "eth0" / "carrier_changes"
    assert _events(host.tick(), "sysops.network.interface.carrier.flaps") == []
    clock[0] += 60
    changes.write_text(str(int(changes.read_text()) + 4) + "\n")  # down, up, down, up within a minute
    assert _events(host.tick(), "sysops.network.interface.carrier.flaps") == [
        (Severity.WARNING, {"network.interface.name": "eth0"})
    ]
    clock[0] += 301  # no change for five minutes
    assert _events(host.tick(), "sysops.network.interface.carrier.flaps") == [
        (None, {"network.interface.name": "eth0"})
    ]


def test_a_degraded_raid_array_is_critical_and_clears_once_rebuilt(host: Host) -> None:
    host.add("mdraid", MdRaidCollector)
    md1 = {"sysops.raid.array": "md1", "sysops.raid.level": "raid5"}
    assert _events(host.tick(), "sysops.raid.degraded") == [(Severity.CRITICAL, md1)]
    mdstat = host.root / "proc" / "mdstat"
    rebuilt = [line for line in mdstat.read_text().splitlines(keepends=True) if "recovery =" not in line]
    text = "".join(rebuilt).replace("sde1[3](F)", "sde1[3]").replace("[4/3] [UUU_]", "[4/4] [UUUU]")
    mdstat.write_text(text)
    assert _events(host.tick(), "sysops.raid.degraded") == [(None, md1)]


def test_disk_health_rules_fire_and_clear(host: Host, tmp_path: Path) -> None:
    recordings = tmp_path / "smartctl"
    shutil.copytree(FIXTURES / "smartctl", recordings)
    disk = host.add("disk_health", DiskHealthCollector, runner=RecordedSmartctl(recordings))
    host.tick()  # starts the first smartctl round on the worker
    assert disk.wait(30.0)
    findings = host.tick()
    nvme1 = {"hw.type": "physical_disk", "hw.id": "nvme1"}
    assert _events(findings, "sysops.disk.health.critical_warning") == [(Severity.CRITICAL, nvme1)]
    assert _events(findings, "hw.errors") == [(Severity.WARNING, {**nvme1, "error.type": "media"})]
    worn = {**nvme1, "hw.physical_disk.state": "remaining"}
    assert _events(findings, "hw.physical_disk.endurance_utilization") == [(Severity.WARNING, worn)]
    status = _events(findings, "hw.status")
    assert [(s, a["hw.id"], a["hw.state"]) for s, a in status] == [(Severity.CRITICAL, "nvme1", "failed")]
    # The same disk reads healthy again (the readings of a healthy disk under nvme1's identity).
    failing = json.loads((recordings / "nvme1.json").read_text())
    doc = json.loads((recordings / "nvme0.json").read_text())
    doc["device"]["name"] = "/dev/nvme1"
    doc["model_name"], doc["serial_number"] = failing["model_name"], failing["serial_number"]
    (recordings / "nvme1.json").write_text(json.dumps(doc))
    disk.refresh()
    cleared = host.tick()
    assert _events(cleared, "sysops.disk.health.critical_warning") == [(None, nvme1)]
    assert _events(cleared, "hw.errors") == [(None, {**nvme1, "error.type": "media"})]
    assert _events(cleared, "hw.physical_disk.endurance_utilization") == [(None, worn)]
    assert [(s, a["hw.state"]) for s, a in _events(cleared, "hw.status")] == [(None, "failed")]
