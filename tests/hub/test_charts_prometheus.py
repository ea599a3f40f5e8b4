"""Host-page charts from a real Prometheus server (hub.prometheus_url), scraping a host's metrics."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.bridge.conftest import NatsServer
from tests.conftest import free_port, need_binary
from tests.hub.conftest import GetServer, RunningHub, wait_for

# What two hosts' agents expose, as Prometheus scrapes them through a Collector (host_name on
# every series); values change between scrapes so the chart has a shape to check.
EXPOSITION = """# TYPE system_cpu_utilization_ratio gauge
system_cpu_utilization_ratio{{host_name="web-1",cpu_mode="user"}} {user}
system_cpu_utilization_ratio{{host_name="web-1",cpu_mode="system"}} 0.125
system_cpu_utilization_ratio{{host_name="db-1",cpu_mode="user"}} 0.75
# TYPE system_memory_utilization_ratio gauge
system_memory_utilization_ratio{{host_name="web-1",system_memory_state="used"}} 0.5
"""


class Target:
    """A scrape target whose CPU figure is the scrape's number divided by 100."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.server = GetServer(self._answer)
        self.address = self.server.address

    def _answer(self) -> tuple[bytes, str]:
        self.scrapes += 1
        return EXPOSITION.format(user=self.scrapes / 100).encode(), "text/plain; version=0.0.4"

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    """A Prometheus server scraping the target every second; yields its base URL."""
    binary = need_binary("prometheus")
    target = Target()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: hosts\n    honor_labels: true\n    static_configs:\n"
        f"      - targets: ['{target.address}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def three_samples() -> bool:
        assert server.poll() is None, (tmp_path / "prometheus.log").read_text()
        try:
            query = 'count_over_time(system_cpu_utilization_ratio{host_name="web-1",cpu_mode="user"}[5m])'
            result = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=5).json()
        except (httpx.HTTPError, ValueError):  # not listening yet, or "Service Unavailable" while it starts
            return False
        found = result.get("data", {}).get("result", [])
        return bool(found) and float(found[0]["value"][1]) >= 3

    try:
        wait_for(three_samples, 60, "three scrapes stored by Prometheus")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=15)
        log.close()
        target.close()


def test_charts_come_from_prometheus_for_that_host_only(
    nats_server: NatsServer, prometheus: str, start_hub: Any
) -> None:
    hub: RunningHub = start_hub(nats_server.url, prometheus_url=prometheus)
    ui = hub.get("/api/v1/status")["ui"]
    # Unset chart_metrics: the three utilisation charts, by the names Prometheus has.
    assert ui["charts"] == "prometheus"
    assert ui["chart_metrics"] == [
        "system_cpu_utilization_ratio",
        "system_memory_utilization_ratio",
        "system_filesystem_utilization_ratio",
    ]

    answer = hub.get("/api/v1/hosts/web-1/series", metric="system_cpu_utilization_ratio", since=300, step=1)
    assert answer["ok"] is True
    assert answer["source"] == "prometheus"
    by_mode = {s["labels"]["cpu_mode"]: s for s in answer["series"]}
    assert set(by_mode) == {"user", "system"}  # db-1's series are not on web-1's chart
    assert all(s["labels"]["host_name"] == "web-1" for s in answer["series"])
    assert {v for _, v in by_mode["system"]["points"]} == {0.125}
    user = [v for _, v in by_mode["user"]["points"]]
    assert len(user) >= 3
    # Each stored scrape is n/100 for the n-th scrape, so the chart rises in steps of 0.01.
    assert all(round(v * 100, 6).is_integer() for v in user)
    assert user == sorted(user)
    assert user[-1] > user[0]
    times = [t for t, _ in by_mode["user"]["points"]]
    assert times == sorted(times)

    # A host Prometheus has never seen: an empty chart, not an error.
    assert hub.get("/api/v1/hosts/nowhere/series", metric="system_cpu_utilization_ratio")["series"] == []


def test_only_a_metric_name_reaches_promql(nats_server: NatsServer, prometheus: str, start_hub: Any) -> None:
    hub: RunningHub = start_hub(nats_server.url, prometheus_url=prometheus)
    for metric in (
        "system_cpu_utilization_ratio or up",  # would chart every host's series
        "sum(system_cpu_utilization_ratio)",
        "system.cpu.utilization",  # an OpenTelemetry name: Prometheus knows it by another
        'x{host_name="db-1"}',
        "",
    ):
        response = hub.client.get("/api/v1/hosts/web-1/series", params={"metric": metric})
        assert response.status_code == 400, metric
        assert "Prometheus metric name" in response.json()["error"]
