"""Alertmanager both ways, against Debian's real Alertmanager (0.25).

The `alertmanager` channel posts to a real Alertmanager, which groups the alerts by host, notifies
its webhook receiver and resolves them; the webhook channel's `format = "alertmanager"` body has the
shape and the labels of the body that same Alertmanager sends.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from otel_sysops.alerts import ChannelError, Severity
from otel_sysops.alerts._alertmanager import AlertmanagerChannel, alert_labels, label_name
from otel_sysops.alerts._build import build_channel
from otel_sysops.alerts._http import WebhookChannel
from otel_sysops.errors import SysopsError
from otel_sysops.settings import load_settings
from tests.conftest import free_port, need_binary

from ._servers import Receiver, http_receiver, make_alert, notification

DEADLINE = 30.0


@dataclass
class Alertmanager:
    url: str
    receiver: Receiver

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())


def _wait(what: str, condition: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@contextmanager
def alertmanager(tmp_path: Path, name: str = "am") -> Iterator[Alertmanager]:
    """Run a real Alertmanager on 127.0.0.1 with a webhook receiver; cluster listening disabled."""
    binary = need_binary("prometheus-alertmanager")
    with http_receiver() as rx:
        work = tmp_path / name
        work.mkdir()
        (work / "alertmanager.yml").write_text(
            "route:\n"
            "  receiver: hook\n"
            "  group_by: [host]\n"
            "  group_wait: 1s\n"
            "  group_interval: 500ms\n"
            "  repeat_interval: 1h\n"
            "receivers:\n"
            "  - name: hook\n"
            "    webhook_configs:\n"
            f"      - url: {rx.url}/am\n"
            "        send_resolved: true\n"
        )
        port = free_port()
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={work / 'alertmanager.yml'}",
                f"--storage.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / "stderr").open("wb"),
        )
        am = Alertmanager(f"http://127.0.0.1:{port}", rx)
        try:

            def ready() -> bool:
                assert process.poll() is None, (work / "stderr").read_text()
                with urllib.request.urlopen(am.url + "/-/ready", timeout=2) as response:
                    status: int = response.status
                    return status == 200

            _wait("Alertmanager to be ready", ready)
            yield am
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _run(channel: Any, *notes: Any) -> None:
    async def go() -> None:
        try:
            for note in notes:
                await channel.send(note)
        finally:
            await channel.aclose()

    anyio.run(go)


def _firing(host: str = "web-1") -> list[Any]:
    return [
        make_alert(
            "filesystem.full",
            Severity.CRITICAL,
            host=host,
            metric="system.filesystem.utilization",
            attributes={"system.filesystem.mountpoint": "/var", "system.device": "sda1"},
            value=0.97,
            threshold=0.95,
            fingerprint=f"fp-fs-{host}",
        ),
        make_alert(
            "cpu.high", Severity.WARNING, host=host, value=0.93, threshold=0.9, fingerprint=f"fp-cpu-{host}"
        ),
    ]


def _resolved(alert: Any) -> Any:
    from dataclasses import replace

    return replace(alert, state="resolved", ends_at=time.time())


def _am_notifications(am: Alertmanager, status: str) -> list[dict[str, Any]]:
    return [r.json() for r in list(am.receiver.requests) if r.json()["status"] == status]


def test_alertmanager_receives_groups_and_resolves_our_alerts(tmp_path: Path) -> None:
    with alertmanager(tmp_path) as am:
        alerts = _firing()
        channel = AlertmanagerChannel("am", Severity.INFO, [am.url], 5.0, allow_insecure=True)
        _run(channel, notification(*alerts))
        active = _wait("both alerts active", lambda: len(am.get("/api/v2/alerts?active=true")) == 2 and am)
        by_name = {a["labels"]["alertname"]: a for a in active.get("/api/v2/alerts")}
        fs = by_name["filesystem.full"]
        assert fs["labels"] == {
            "alertname": "filesystem.full",
            "severity": "critical",
            "host": "web-1",
            "metric": "system.filesystem.utilization",
            "system_filesystem_mountpoint": "/var",
            "system_device": "sda1",
        }
        assert fs["annotations"]["value"] == "0.97"
        assert fs["annotations"]["threshold"] == "0.95"
        assert fs["annotations"]["message"] == "CPU above 90%"
        assert fs["status"]["state"] == "active"
        # One group: Alertmanager groups by host.
        groups = am.get("/api/v2/alerts/groups")
        assert [(g["labels"], len(g["alerts"])) for g in groups] == [({"host": "web-1"}, 2)]
        # The group's notification with both alerts (under load an earlier one may hold only one).
        firing = _wait(
            "the grouped firing notification",
            lambda: [n for n in _am_notifications(am, "firing") if len(n["alerts"]) == 2],
        )
        assert firing[0]["groupLabels"] == {"host": "web-1"}

        channel = AlertmanagerChannel("am", Severity.INFO, [am.url], 5.0, allow_insecure=True)
        _run(channel, notification(*[_resolved(a) for a in alerts]))
        _wait("no active alert", lambda: am.get("/api/v2/alerts?active=true") == [])
        resolved = _wait("the resolved notification", lambda: _am_notifications(am, "resolved"))
        assert {a["labels"]["alertname"] for a in resolved[-1]["alerts"]} == {"filesystem.full", "cpu.high"}
        assert all(a["status"] == "resolved" for a in resolved[-1]["alerts"])


def test_firing_alerts_are_re_posted_and_stay_active(tmp_path: Path) -> None:
    with alertmanager(tmp_path) as am:
        channel = AlertmanagerChannel(
            "am", Severity.INFO, [am.url], 5.0, allow_insecure=True, resend_interval=0.1
        )
        seen: list[float] = []

        async def go() -> None:
            try:
                await channel.send(notification(_firing()[1]))
                with anyio.fail_after(DEADLINE):
                    while channel.posts < 4:
                        await anyio.sleep(0.05)
                (alert,) = await anyio.to_thread.run_sync(am.get, "/api/v2/alerts?active=true")
                seen.append(datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp())
                # Resolution is re-posted too, then the alert is dropped after RESOLVED_RESEND.
                await channel.send(notification(_resolved(_firing()[1])))
                assert [a.state for a in channel.pending()] == ["resolved"]
            finally:
                await channel.aclose()

        anyio.run(go)
        # Valid for 4 resend intervals (0.4 s here) ahead of the last post, not for hours.
        (ends,) = seen
        assert ends < time.time() + 60
        _wait("the alert resolved", lambda: am.get("/api/v2/alerts?active=true") == [])


def _has_alerts(am: Alertmanager, n: int) -> Callable[[], bool]:
    """A condition for `_wait`: `am` holds `n` alerts."""
    return lambda: len(am.get("/api/v2/alerts")) == n


def test_every_alertmanager_gets_the_alerts_and_one_down_is_tolerated(tmp_path: Path) -> None:
    with alertmanager(tmp_path, "a") as one, alertmanager(tmp_path, "b") as two:
        dead = f"http://127.0.0.1:{free_port()}"
        channel = AlertmanagerChannel("am", Severity.INFO, [one.url, dead, two.url], 5.0, allow_insecure=True)
        _run(channel, notification(*_firing()))
        for am in (one, two):
            _wait("the alerts on every live Alertmanager", _has_alerts(am, 2))
    channel = AlertmanagerChannel("am", Severity.INFO, [dead], 5.0, allow_insecure=True)
    with pytest.raises(ChannelError, match="no Alertmanager accepted"):
        _run(channel, notification(*_firing()))


def _shape(value: Any) -> Any:
    """Return the JSON structure of a value: keys and types, not the values."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_webhook_alertmanager_format_is_what_alertmanager_sends(tmp_path: Path) -> None:
    # Alertmanager's own webhook body for our alerts, and ours for the same alerts, side by side.
    alerts = _firing()
    with alertmanager(tmp_path) as am:
        _run(
            AlertmanagerChannel("am", Severity.INFO, [am.url], 5.0, allow_insecure=True),
            notification(*alerts),
        )
        # Under load the group's first notification may carry only the alert that arrived before
        # group_wait ran out; the next one (group_interval later) carries the whole group.
        (theirs,) = _wait(
            "Alertmanager's webhook with the whole group",
            lambda: [n for n in _am_notifications(am, "firing") if len(n["alerts"]) == len(alerts)][:1],
        )
    with http_receiver() as rx:
        _run(
            WebhookChannel("hook", Severity.INFO, rx.url, 5.0, True, format="alertmanager"),
            notification(*alerts),
        )
        (request,) = rx.wait_for(1)
    ours = request.json()
    for body in (ours, theirs):
        body["alerts"].sort(key=lambda a: a["labels"]["alertname"])
    assert _shape(ours) == _shape(theirs)
    assert ours["version"] == theirs["version"] == "4"
    assert ours["status"] == theirs["status"] == "firing"
    assert ours["groupLabels"] == theirs["groupLabels"]
    assert ours["commonLabels"] == theirs["commonLabels"]
    assert ours["commonAnnotations"] == theirs["commonAnnotations"]

    def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {a["labels"]["alertname"]: a for a in body["alerts"]}

    for name, alert in by_name(theirs).items():
        mine = by_name(ours)[name]
        for key in ("status", "labels", "annotations", "endsAt"):
            assert mine[key] == alert[key], key
        # Same instant (Alertmanager keeps our milliseconds).
        assert mine["startsAt"][:19] == alert["startsAt"][:19]


def test_label_names_are_classic_prometheus_names() -> None:
    assert label_name("system.filesystem.mountpoint") == "system_filesystem_mountpoint"
    assert label_name("9lives") == "_9lives"
    assert label_name("gpu-uuid") == "gpu_uuid"
    labels = alert_labels(make_alert(attributes={"alertname": "spoof", "k8s.pod.name": "x"}))
    assert labels["alertname"] == "cpu.high"
    assert labels["k8s_pod_name"] == "x"


def test_channel_from_settings_and_bad_url_named(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[alerts.channels]]\ntype = "alertmanager"\nurls = ["http://am-1:9093", "http://am-2:9093/"]\n'
        "allow_insecure = true\nresend_interval = 30\n"
        '[[alerts.channels]]\ntype = "webhook"\nurl = "https://hooks.example/x"\nformat = "alertmanager"\n'
    )
    settings = load_settings(config, {"prometheus": {"enabled": False}}, environ={})
    am, hook = (build_channel(c) for c in settings.alerts.all_channels())
    assert isinstance(am, AlertmanagerChannel)
    assert am.min_severity == Severity.INFO
    assert am.resend_interval == 30
    assert isinstance(hook, WebhookChannel)
    assert hook.format == "alertmanager"
    config.write_text('[[alerts.channels]]\ntype = "alertmanager"\nurls = ["http://am-1:9093"]\n')
    with pytest.raises(SysopsError, match="urls"):
        load_settings(config, {"prometheus": {"enabled": False}}, environ={})
