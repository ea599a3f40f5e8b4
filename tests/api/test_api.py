"""The local API through a real HTTP client on the real HTTP server, with the real alert manager."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from otel_sysops.alerts import ChannelError, Finding, Notification, Severity
from otel_sysops.api import EventHub
from otel_sysops.settings import ApiSettings

from .conftest import TOKEN, Agent, stop, wait_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class RecordingChannel:
    """A channel that keeps what it is sent (or fails every delivery)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.min_severity = Severity.INFO
        self.fail = fail
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        if self.fail:
            raise ChannelError(f"{self.name}: refused")
        self.sent.append(notification)

    async def aclose(self) -> None:
        return None


def deliver(agent: Agent) -> None:
    """Send what each channel has queued now (the delivery tasks' work, done inline)."""

    async def pump() -> None:
        for runner in agent.manager.runners:
            await runner.pump(force=True)

    anyio.run(pump, backend="asyncio")


def history(agent: Agent, **params: str) -> dict[str, Any]:
    assert agent.api.history is not None
    assert agent.api.history.flush(10.0)
    response = agent.get("/api/v1/alerts/history", **params)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def test_status_reports_version_collectors_sinks_and_alerts(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.pipeline.tick()
    doc = agent.get("/api/v1/status").json()
    assert doc["version"]
    assert doc["host"] == "test-host"
    assert doc["interval"] == 1.0
    assert doc["last_tick"] is not None
    assert "store" in doc["sinks"]
    assert "api.events" in doc["sinks"]
    assert doc["alerts"]["active"] == 0
    assert doc["dropped"] == {"store_series_refused": 0, "history_changes": 0, "event_clients": 0}


def test_active_alerts_and_their_history_fired_then_resolved(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    finding = agent.fire("cpu.high", Severity.WARNING, cpu="0")
    active = agent.get("/api/v1/alerts").json()["alerts"]
    assert [a["rule"] for a in active] == ["cpu.high"]
    assert active[0]["severity"] == "warning"
    assert active[0]["silenced_by"] is None

    agent.fire("cpu.high", Severity.CRITICAL, cpu="0")
    doc = history(agent)
    (row,) = doc["alerts"]
    assert row["state"] == "firing"
    assert row["severity"] == "critical"

    agent.manager.submit(cleared(finding))
    doc = history(agent)
    (row,) = doc["alerts"]
    assert row["state"] == "resolved"
    assert row["end_reason"] == "resolved"
    assert row["resolved_at"] >= row["fired_at"]
    assert row["attributes"] == {"cpu": "0"}
    assert agent.get("/api/v1/alerts").json()["alerts"] == []


def cleared(finding: Finding) -> Finding:
    """Return the finding that clears `finding`."""
    return replace(finding, severity=None, message="back to normal")


def test_history_filters_and_paging(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    for i in range(5):
        agent.fire(f"disk.full.{i}", Severity.WARNING if i % 2 else Severity.CRITICAL, device=f"sd{i}")
    assert history(agent)["total"] == 5
    crit = history(agent, severity="critical")
    assert crit["total"] == 3
    assert {a["severity"] for a in crit["alerts"]} == {"critical"}
    assert history(agent, rule="disk.full.1")["total"] == 1
    assert history(agent, rule="disk.full.*", match="device=sd4")["total"] == 1
    assert history(agent, match="device=sd9")["total"] == 0
    assert history(agent, state="resolved")["total"] == 0
    assert history(agent, since="1h", until="0")["total"] == 0
    page1 = history(agent, limit="2")
    page2 = history(agent, limit="2", offset="2")
    ids1 = [a["id"] for a in page1["alerts"]]
    ids2 = [a["id"] for a in page2["alerts"]]
    assert len(ids1) == len(ids2) == 2
    assert not set(ids1) & set(ids2)


def test_history_survives_a_restart_and_open_firings_are_closed(
    start_agent: Callable[..., Agent],
) -> None:
    first = start_agent()
    resolved = first.fire("mem.high", Severity.WARNING)
    first.manager.submit(cleared(resolved))
    first.fire("load.high", Severity.CRITICAL)
    assert first.api.history is not None
    assert first.api.history.flush(10.0)
    stop(first)

    second = start_agent()
    rows = {a["rule"]: a for a in history(second)["alerts"]}
    assert rows["mem.high"]["end_reason"] == "resolved"
    assert rows["load.high"]["state"] == "resolved"
    assert rows["load.high"]["end_reason"] == "agent restarted"
    assert second.api.history is not None
    assert second.api.history.path is not None
    assert oct(second.api.history.path.stat().st_mode & 0o777) == "0o600"


def test_notifications_and_their_outcome_per_channel_are_recorded(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    good, bad = RecordingChannel("good"), RecordingChannel("bad", fail=True)
    agent.manager.add_channel(good)
    agent.manager.add_channel(bad)
    agent.fire("net.errors", Severity.CRITICAL, interface="eth0")
    deliver(agent)
    (row,) = history(agent)["alerts"]
    outcomes = {(n["channel"], n["delivered"]) for n in row["notifications"]}
    assert outcomes == {("good", True), ("bad", False)}
    failed = next(n for n in row["notifications"] if n["channel"] == "bad")
    assert "refused" in failed["error"]


def test_a_silence_set_through_the_api_suppresses_only_the_matching_alert(
    start_agent: Callable[..., Agent],
) -> None:
    agent = start_agent()
    channel = RecordingChannel("pager")
    agent.manager.add_channel(channel)
    body = {"matchers": {"rule": "disk.*", "device": "sda"}, "duration": "2h", "comment": "replacing sda"}
    created = agent.client.post(agent.url + "/api/v1/silences", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    silence = created.json()
    assert silence["matchers"] == body["matchers"]
    assert silence["comment"] == "replacing sda"
    listed = agent.get("/api/v1/silences").json()["silences"]
    assert [s["id"] for s in listed] == [silence["id"]]

    agent.fire("disk.full", Severity.CRITICAL, device="sda")
    agent.fire("disk.full", Severity.CRITICAL, device="sdb")
    deliver(agent)
    sent = [a.attributes["device"] for n in channel.sent for a in n.alerts]
    assert sent == ["sdb"]
    active = {
        a["attributes"]["device"]: a["silenced_by"] for a in agent.get("/api/v1/alerts").json()["alerts"]
    }
    assert active == {"sda": silence["id"], "sdb": None}

    removed = agent.client.delete(agent.url + f"/api/v1/silences/{silence['id']}", headers=AUTH)
    assert removed.status_code == 200
    assert agent.get("/api/v1/silences").json()["silences"] == []
    assert (
        agent.client.delete(agent.url + f"/api/v1/silences/{silence['id']}", headers=AUTH).status_code == 404
    )


def test_a_token_is_required_to_mutate(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    body = {"matchers": {"rule": "x"}, "duration": 60}
    url = agent.url + "/api/v1/silences"
    none = agent.client.post(url, json=body)
    assert none.status_code == 401
    assert "token" in none.json()["error"]
    assert none.headers["www-authenticate"].startswith("Bearer")
    wrong = agent.client.post(url, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert agent.client.delete(url + "/abc").status_code == 401
    assert agent.manager.silences() == []
    assert agent.client.post(url, json=body, headers=AUTH).status_code == 201


def test_without_a_token_configured_mutating_is_off(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(token=None)
    response = agent.client.post(
        agent.url + "/api/v1/silences", json={"matchers": {"rule": "x"}, "duration": 60}, headers=AUTH
    )
    assert response.status_code == 403
    assert "api.token" in response.json()["error"]


def test_the_token_can_come_from_a_file(start_agent: Callable[..., Agent], tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    agent = start_agent(token=None, token_file=str(secret))
    ok = agent.client.post(
        agent.url + "/api/v1/silences",
        json={"matchers": {"rule": "x"}, "duration": 60},
        headers={"Authorization": "Bearer from-a-file"},
    )
    assert ok.status_code == 201


def test_reads_can_require_the_token(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(read_access="token")
    assert agent.get("/api/v1/status").status_code == 401
    assert agent.client.get(agent.url + "/api/v1/status", headers=AUTH).status_code == 200


BAD_INPUT: list[tuple[str, str, bytes | None, int, str]] = [
    ("GET", "/api/v1/alerts/history?colour=red", None, 400, "unknown parameter 'colour'"),
    ("GET", "/api/v1/alerts/history?limit=1000000", None, 400, "limit"),
    ("GET", "/api/v1/alerts/history?limit=ten", None, 400, "integer"),
    ("GET", "/api/v1/alerts/history?severity=loud", None, 400, "severity"),
    ("GET", "/api/v1/alerts/history?since=yesterday", None, 400, "since"),
    ("GET", "/api/v1/alerts/history?state=open", None, 400, "state"),
    ("GET", "/api/v1/alerts/history?match=nokey", None, 400, "KEY=VALUE"),
    ("GET", "/api/v1/alerts/history?limit=1&limit=2", None, 400, "once"),
    ("GET", "/api/v1/series", None, 400, "metric"),
    ("GET", "/api/v1/series?metric=x&match=%3D", None, 400, "match"),
    ("GET", "/api/v1/anomalies?min_score=2", None, 400, "min_score"),
    ("GET", "/api/v1/nothing", None, 404, "no such route"),
    ("PUT", "/api/v1/alerts", None, 405, "GET"),
    ("POST", "/api/v1/silences", b"{not json", 400, "not valid JSON"),
    ("POST", "/api/v1/silences", b"[1, 2]", 400, "JSON object"),
    ("POST", "/api/v1/silences", b'{"matchers": {}, "duration": 60}', 400, "matchers"),
    ("POST", "/api/v1/silences", b'{"matchers": {"rule": 1}, "duration": 60}', 400, "matchers"),
    ("POST", "/api/v1/silences", b'{"matchers": {"rule": "x"}}', 400, "duration"),
    ("POST", "/api/v1/silences", b'{"matchers": {"rule": "x"}, "duration": -5}', 400, "duration"),
    ("POST", "/api/v1/silences", b'{"matchers": {"rule": "x"}, "duration": "soon"}', 400, "duration"),
    ("POST", "/api/v1/silences", b'{"matchers": {"rule": "x"}, "duration": 60, "who": 1}', 400, "who"),
    ("POST", "/api/v1/silences", b"\xff\xfe", 400, "JSON"),
    ("GET", "/nowhere.php", None, 404, "not found"),
]


def test_bad_input_is_a_4xx_with_a_json_error(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    for method, path, body, status, needle in BAD_INPUT:
        response = agent.client.request(method, agent.url + path, content=body, headers=AUTH)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"] == "application/json", path
        assert needle in response.json()["error"], (path, response.text)
        assert "Traceback" not in response.text


def test_series_rates_and_sums_from_the_ring_store(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    store = agent.pipeline.store
    keys = [
        (("network.interface.name", "eth0"), ("network.io.direction", "receive")),
        (("network.interface.name", "eth1"), ("network.io.direction", "receive")),
        (("network.interface.name", "lo"), ("network.io.direction", "receive")),
    ]
    t0 = time.time() - 10
    for i in range(5):
        store.begin_tick(t0 + i)
        store.put("system.network.io", keys, [100.0 * i, 10.0 * i, 1000.0 * i])
    doc = agent.get(
        "/api/v1/series",
        metric="system.network.io",
        match="network.interface.name!=lo",
        rate="true",
        sum_by="network.io.direction",
        since="1m",
    ).json()
    assert doc["source"] == "raw"
    (line,) = doc["series"]
    assert line["attributes"] == {"network.io.direction": "receive"}
    assert line["values"] == [110.0, 110.0, 110.0, 110.0]
    plain = agent.get(
        "/api/v1/series", metric="system.network.io", match="network.interface.name=eth*"
    ).json()
    assert len(plain["series"]) == 2
    assert len(plain["timestamps"]) == 5


def test_anomalies_lists_the_highest_scores_now_and_since_when(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    store = agent.pipeline.store
    t0 = time.time() - 10
    keys = [(("sysops.metric", "system.cpu.utilization"),), (("sysops.metric", "system.memory.usage"),)]
    cpu_key = ()
    for i, (a, b) in enumerate([(0.1, 0.2), (0.9, 0.2), (0.95, 0.3), (0.97, 0.6)]):
        store.begin_tick(t0 + i)
        store.put("sysops.anomaly.score", keys, [a, b])
        store.put("system.cpu.utilization", [cpu_key], [0.5 + i])
    doc = agent.get("/api/v1/anomalies", min_score="0.5").json()
    assert [a["metric"] for a in doc["anomalies"]] == ["system.cpu.utilization", "system.memory.usage"]
    top = doc["anomalies"][0]
    assert top["score"] == pytest.approx(0.97)
    assert top["since"] == pytest.approx(t0 + 1)
    assert top["value"] == pytest.approx(3.5)


def test_inventory_is_served_and_cached(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    assert agent.get("/api/v1/inventory").json()["os"] == {"name": "Debian"}


def test_events_stream_ticks_and_alert_changes(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    with agent.client.stream("GET", agent.url + "/api/v1/events") as response:
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        wait_for(lambda: agent.api.events.listening, "the stream client registered")
        agent.pipeline.tick()
        agent.fire("cpu.high", Severity.WARNING)
        events: list[tuple[str, dict[str, Any]]] = []
        event = ""
        for line in lines:
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((event, json.loads(line.removeprefix("data: "))))
                if len(events) == 2:
                    break
    kinds = [e for e, _ in events]
    assert kinds == ["tick", "alert"]
    assert set(events[0][1]["charts"]) == {"cpu", "memory", "disk", "network", "load"}
    assert events[1][1]["change"] == "fired"


def test_a_slow_stream_client_is_dropped_and_publishing_never_blocks() -> None:
    hub = EventHub(max_clients=2, queue_size=4)
    slow = hub.subscribe()
    assert next(slow).startswith(b"retry:")
    for i in range(50):
        hub.publish("tick", {"i": i})  # nobody reads: the fifth event overflows the queue
    assert hub.dropped_clients == 1
    assert not hub.listening
    rest = list(slow)
    assert rest[-1].startswith(b"event: dropped")
    assert len(rest) <= 5


def test_history_writes_never_block_the_submitter(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(history_queue=10)
    history_store = agent.api.history
    assert history_store is not None
    assert history_store.path is not None
    # Another process holds the database's write lock: the writer thread waits, the queue fills.
    blocker = sqlite3.connect(history_store.path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(200):
            agent.fire(f"rule.{i}", Severity.WARNING)
        assert len(agent.manager.active_alerts()) == 200
        wait_for(lambda: history_store.dropped > 0, "changes dropped on a full queue")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert history_store.flush(20.0)
    kept = history(agent)["total"]
    # Retried while locked: nothing is lost to the lock, only what the full queue refused.
    assert history_store.lost == 0
    assert kept + history_store.dropped == 200
    assert agent.get("/api/v1/status").json()["dropped"]["history_changes"] == history_store.dropped


def test_api_off_serves_nothing(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(enabled=False)
    assert agent.api.handlers == {}
    assert agent.get("/api/v1/status").status_code == 404


def test_http_client_sees_the_page(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    page = agent.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/app.js" in page.text
    assert agent.get("/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(agent.url + "/style.css").status_code == 200


def test_a_reload_changes_the_token(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    agent.api.reconfigure(ApiSettings(token="rotated"))
    body = {"matchers": {"rule": "x"}, "duration": 60}
    url = agent.url + "/api/v1/silences"
    assert agent.client.post(url, json=body, headers=AUTH).status_code == 401
    rotated = {"Authorization": "Bearer rotated"}
    assert agent.client.post(url, json=body, headers=rotated).status_code == 201


def test_nothing_is_built_for_the_stream_while_no_one_listens(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent()
    for _ in range(3):
        agent.pipeline.tick()
    agent.fire("cpu.high")
    assert agent.api.events.published == 0


def test_stream_clients_past_the_limit_get_503(start_agent: Callable[..., Agent]) -> None:
    agent = start_agent(max_stream_clients=1)
    with agent.client.stream("GET", agent.url + "/api/v1/events") as first:
        assert first.status_code == 200
        second = agent.get("/api/v1/events")
        assert second.status_code == 503
        assert "max_stream_clients = 1" in second.json()["error"]
