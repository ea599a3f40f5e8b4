"""The hub's REST API through a real HTTP client, the hub on a real nats-server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from tests.bridge.conftest import NatsServer
from tests.hub.conftest import ADMIN_KEY, RunningHub, alert_doc, heartbeat, nats_portal, wait_for

pytestmark = pytest.mark.slow


async def _publish(url: str, messages: list[tuple[str, bytes]], jetstream: bool = False) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for subject, data in messages:
        if jetstream:
            await js.publish(subject, data)
        else:
            await nc.publish(subject, data)
    await nc.flush()
    await nc.close()


def _inventory(host: str, mtu: int) -> bytes:
    doc = {
        "schema_version": 1,
        "host": host,
        "collected_at": 1.0,
        "os": {"kernel": "6.1"},
        "network_interfaces": [{"name": "eno1", "mtu": mtu}],
        "cpu": {"model": "x"},
        "hash": f"h{mtu}",
    }
    return json.dumps(doc).encode()


def test_api_hosts_alerts_inventory_auth_and_bad_input(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub]
) -> None:
    hub = start_hub(nats_server.url)
    with nats_portal() as portal:
        portal.call(
            _publish,
            nats_server.url,
            [
                ("sysops.web-1.heartbeat", heartbeat("web-1", 5.0, 90)),
                ("sysops.web-2.heartbeat", heartbeat("web-2", 5.0, 10)),
                ("sysops.web-1.inventory", _inventory("web-1", 1500)),
            ],
        )
        portal.call(
            _publish,
            nats_server.url,
            [
                ("sysops.web-1.alerts", json.dumps(alert_doc(1, "web-1", severity="critical")).encode()),
                ("sysops.web-1.alerts", json.dumps(alert_doc(2, "web-1")).encode()),
                ("sysops.web-2.alerts", json.dumps(alert_doc(3, "web-2")).encode()),
                ("sysops.web-2.alerts", json.dumps(alert_doc(3, "web-2", state="resolved")).encode()),
                ("sysops.web-1.alerts", b"{not json"),
                ("sysops.web-1.inventory", _inventory("web-1", 9000)),
            ],
            True,
        )
    wait_for(lambda: hub.get("/api/v1/alerts/history")["total"] == 3, what="three alerts in history")
    wait_for(lambda: len(hub.get("/api/v1/inventory/changes")["changes"]) == 2, what="inventory change")

    hosts = hub.get("/api/v1/hosts", sort="cpu", order="desc")
    assert [h["host"] for h in hosts["hosts"]] == ["web-1", "web-2"]
    web1 = hosts["hosts"][0]
    assert web1["status"] == "up"
    assert web1["summary"] == {"cpu": 0.9, "memory": 0.5, "disk": 0.25}
    assert web1["alerts"]["critical"] == 1
    assert web1["alerts"]["warning"] == 1
    assert hub.get("/api/v1/hosts", q="eb-2")["total"] == 1

    active = hub.get("/api/v1/alerts")
    assert sorted(a["id"] for a in active["alerts"]) == ["alert-web-1-1", "alert-web-1-2"]
    assert hub.get("/api/v1/alerts", severity="critical")["total"] == 1
    resolved = hub.get("/api/v1/alerts/history", state="resolved")
    assert [a["id"] for a in resolved["alerts"]] == ["alert-web-2-3"]
    assert resolved["alerts"][0]["ends_at"] == 1_700_000_103.0
    page = hub.get("/api/v1/alerts/history", limit=1, offset=1)
    assert page["total"] == 3
    assert len(page["alerts"]) == 1
    assert hub.get("/api/v1/alerts/history", host="web-1", since=1_700_000_001.5)["total"] == 1

    changes = hub.get("/api/v1/hosts/web-1/inventory/changes")["changes"]
    assert changes[0]["changed"] == ["network_interfaces"]
    assert changes[0]["old_hash"] == "h1500"
    assert hub.get("/api/v1/hosts/web-1/inventory")["inventory"]["network_interfaces"][0]["mtu"] == 9000
    detail = hub.get("/api/v1/hosts/web-1")
    assert detail["heartbeat"]["agent"]["pid"] == 1090
    assert len(detail["active_alerts"]) == 2

    status = hub.get("/api/v1/status")
    assert status["counts"]["malformed"] == 1
    assert status["database"]["schema_version"] == 2
    doc = hub.get("/api/v1/openapi.json")
    assert doc["openapi"].startswith("3.")
    assert "/api/v1/alerts/history" in doc["paths"]

    # Bad input: 4xx with a JSON error, never a traceback.
    for path, params in [
        ("/api/v1/alerts/history", {"colour": "red"}),
        ("/api/v1/alerts/history", {"limit": "100000"}),
        ("/api/v1/alerts/history", {"limit": "many"}),
        ("/api/v1/alerts/history", {"since": "yesterday"}),
        ("/api/v1/hosts", {"sort": "shoe_size"}),
        ("/api/v1/hosts/nowhere", {}),
        ("/api/v1/nothing", {}),
    ]:
        response = hub.client.get(path, params=params)
        assert 400 <= response.status_code < 500, (path, params, response.text)
        body = response.json()
        assert set(body) == {"error", "status"}
        assert "Traceback" not in response.text

    # Mutating needs a key with a role; the admin key makes an operator key and a viewer key.
    silence = {"hosts": ["web-1"], "matchers": {"rule": "cpu_high"}, "duration": 60}
    assert hub.client.post("/api/v1/silences", json=silence).status_code == 401
    assert hub.client.post("/api/v1/keys", json={"name": "x"}).status_code == 401
    bad = hub.client.post("/api/v1/silences", json=silence, headers={"Authorization": "Bearer osh_nope"})
    assert bad.status_code == 401
    made = {}
    for role in ("viewer", "operator"):
        response = hub.client.post("/api/v1/keys", json={"name": role, "role": role}, headers=hub.admin())
        assert response.status_code == 201, response.text
        made[role] = response.json()["key"]
    assert hub.client.post("/api/v1/keys", json={"name": "viewer"}, headers=hub.admin()).status_code == 409
    forbidden = hub.client.post("/api/v1/silences", json=silence, headers={"X-API-Key": made["viewer"]})
    assert forbidden.status_code == 403
    operator = {"Authorization": f"Bearer {made['operator']}"}
    for body in (b"{broken", b"[1]", json.dumps({**silence, "duration": -1}).encode(), b'{"hosts": []}'):
        response = hub.client.post("/api/v1/silences", content=body, headers=operator)
        assert response.status_code == 400, response.text
        assert "error" in response.json()
    keys = hub.client.get("/api/v1/keys", headers=hub.admin()).json()["keys"]
    assert {k["name"] for k in keys} == {"viewer", "operator"}
    assert all("hash" not in k and "key" not in k for k in keys)
    stored = hub.hub.store.query("SELECT hash FROM api_keys")
    assert made["operator"] not in json.dumps(stored)


def test_reading_can_require_a_key_and_rate_limit_answers_429(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub]
) -> None:
    hub = start_hub(nats_server.url, anonymous_role="none", rate_limit=0.01, rate_burst=3)
    assert hub.client.get("/api/v1/hosts").status_code == 401
    codes = [hub.client.get("/api/v1/hosts", headers=hub.admin()).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    limited = hub.client.get("/api/v1/hosts", headers=hub.admin())
    assert limited.json()["error"] == "rate limit exceeded"
    assert int(limited.headers["retry-after"]) >= 1


def test_jwt_bearer_tokens(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub], tmp_path: Path
) -> None:
    jwt = pytest.importorskip("jwt")
    import time

    secret = "a-test-secret-of-enough-length-for-hs256"
    (tmp_path / "jwt").write_text(secret + "\n")
    hub = start_hub(nats_server.url, jwt_secret_file=str(tmp_path / "jwt"), anonymous_role="none")

    def token(**claims: Any) -> dict[str, str]:
        body = {"sub": "alice", "exp": time.time() + 60, **claims}
        return {"Authorization": f"Bearer {jwt.encode(body, secret, algorithm='HS256')}"}

    assert hub.client.get("/api/v1/status", headers=token(role="viewer")).json()["you"] == {
        "name": "alice",
        "role": "viewer",
        "via": "jwt",
    }
    assert hub.client.get("/api/v1/keys", headers=token(role="viewer")).status_code == 403
    assert hub.client.get("/api/v1/keys", headers=token(role=["viewer", "admin"])).status_code == 200
    expired = token(role="admin", exp=time.time() - 10)
    assert hub.client.get("/api/v1/keys", headers=expired).status_code == 401
    forged = {"Authorization": "Bearer " + jwt.encode({"role": "admin", "exp": time.time() + 60}, "x" * 40)}
    assert hub.client.get("/api/v1/keys", headers=forged).status_code == 401
    assert httpx.get(f"{hub.url}/healthz").json() == {"ok": True}
    assert ADMIN_KEY  # the configured admin key still works beside JWTs
    assert hub.client.get("/api/v1/keys", headers=hub.admin()).status_code == 200


def test_event_stream_carries_alerts_as_they_arrive(
    nats_server: NatsServer, start_hub: Callable[..., RunningHub]
) -> None:
    hub = start_hub(nats_server.url)
    seen: list[dict[str, Any]] = []
    with hub.client.stream("GET", "/api/v1/events") as response, nats_portal() as portal:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines).startswith("retry:")
        portal.call(
            _publish,
            nats_server.url,
            [("sysops.web-9.alerts", json.dumps(alert_doc(5, "web-9")).encode())],
            True,
        )
        for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if seen[-1]["type"] == "alert":
                    break
    assert seen[-1]["alert"]["id"] == "alert-web-9-5"
