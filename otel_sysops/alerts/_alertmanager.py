"""Alertmanager both ways: a channel posting to `/api/v2/alerts`, and Alertmanager's webhook body.

The channel behaves like a Prometheus server towards its Alertmanagers: every alert it was told
about is posted to each of them, firing ones with `endsAt` a few resend intervals ahead (so an agent
that dies lets them resolve on their own) and re-posted every `resend_interval` while they fire;
a resolved alert is posted with its end time and re-posted for `RESOLVED_RESEND` seconds more (an
Alertmanager that missed it still learns). Alertmanager groups, deduplicates, silences and routes.

`webhook_payload` builds the body Alertmanager's own webhook receiver sends (version 4), so a
receiver written for Alertmanager takes the webhook channel's `format = "alertmanager"` unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from ._errors import ChannelError
from ._format import alert_line
from ._security import check_destination, mask_url
from .channel import Alert, Notification
from .model import Severity

_log = logging.getLogger("otel_sysops.alerts")

API_PATH = "/api/v2/alerts"
# Firing alerts are valid this many resend intervals ahead (Prometheus uses 4 as well).
VALIDITY_FACTOR = 4
# Seconds a resolved alert keeps being re-posted.
RESOLVED_RESEND = 900.0
# Alertmanager's webhook: a firing alert's endsAt is Go's zero time.
ZERO_TIME = "0001-01-01T00:00:00Z"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """Return `key` as a classic Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`)."""
    name = _INVALID.sub("_", key) or "_"
    return f"_{name}" if name[0].isdigit() else name


def rfc3339(ts: float) -> str:
    """Return a UTC RFC 3339 time with milliseconds, as Alertmanager writes them."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(alert: Alert) -> dict[str, str]:
    """Return the alert's identity as labels: the finding's labels, the series attributes, then ours."""
    labels: dict[str, str] = {}
    for source in (alert.labels, alert.attributes):
        for key, value in source.items():
            if value != "":
                labels[label_name(key)] = str(value)
    labels.update(
        {
            "alertname": alert.rule,
            "severity": alert.severity.name.lower(),
            "host": alert.host,
            "metric": alert.metric,
        }
    )
    return labels


def alert_annotations(alert: Alert) -> dict[str, str]:
    """Return what describes the alert without being part of its identity."""
    annotations = {
        "summary": f"{alert.rule} on {alert.host}: {alert.message}",
        "message": alert.message,
        "description": alert_line(alert),
    }
    if alert.value is not None:
        annotations["value"] = f"{alert.value:g}"
    if alert.threshold is not None:
        annotations["threshold"] = f"{alert.threshold:g}"
    return annotations


def api_alert(alert: Alert, now: float, valid_for: float) -> dict[str, Any]:
    """Return one alert as Alertmanager's API v2 takes it (a postableAlert)."""
    ends = alert.ends_at if alert.state == "resolved" and alert.ends_at is not None else now + valid_for
    return {
        "labels": alert_labels(alert),
        "annotations": alert_annotations(alert),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(ends),
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def webhook_payload(notification: Notification, receiver: str, external_url: str = "") -> dict[str, Any]:
    """Return a notification as Alertmanager's webhook receiver body (version 4)."""
    labels = [alert_labels(a) for a in notification.alerts]
    annotations = [alert_annotations(a) for a in notification.alerts]
    common = _common(labels)
    group = {"host": common["host"]} if "host" in common else {}
    group_key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in group.items()) + "}"
    firing = any(a.state == "firing" for a in notification.alerts)
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": _common(annotations),
        "externalURL": external_url,
        "alerts": [
            {
                "status": alert.state,
                "labels": alert_labels(alert),
                "annotations": alert_annotations(alert),
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": rfc3339(alert.ends_at)
                if alert.state == "resolved" and alert.ends_at is not None
                else ZERO_TIME,
                "generatorURL": external_url,
                "fingerprint": alert.fingerprint,
            }
            for alert in notification.alerts
        ],
    }


def api_url(base: str) -> str:
    """Return the alerts endpoint of an Alertmanager given by its base URL (or the endpoint itself)."""
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


class AlertmanagerChannel:
    """Post alerts to `/api/v2/alerts` of one or more Alertmanagers, re-posting while they fire."""

    def __init__(
        self,
        name: str,
        min_severity: Severity,
        urls: Sequence[str],
        timeout: float,
        allow_insecure: bool = False,
        headers: Mapping[str, str] | None = None,
        resend_interval: float = 60.0,
        ca_file: str | None = None,
        clock: Any = time.time,
    ) -> None:
        if not urls:
            raise ValueError("an alertmanager channel needs at least one URL")
        self.name = name
        self.min_severity = min_severity
        self._urls = [api_url(u) for u in urls]
        self._timeout = timeout
        self._allow_insecure = allow_insecure
        self._headers = {"User-Agent": "otel-sysops", "Content-Type": "application/json", **(headers or {})}
        self._verify: Any = ca_file or True
        self.resend_interval = resend_interval
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        # fingerprint -> (alert, when a resolved alert stops being re-posted; None while firing)
        self._known: dict[str, tuple[Alert, float | None]] = {}
        self._resender: asyncio.Task[None] | None = None
        self.posts = 0
        quiet = logging.getLogger("httpx")
        if quiet.getEffectiveLevel() < logging.WARNING:
            quiet.setLevel(logging.WARNING)

    def pending(self) -> list[Alert]:
        """Return the alerts re-posted on the next resend (firing, and recently resolved)."""
        return [alert for alert, _ in self._known.values()]

    def _remember(self, notification: Notification, now: float) -> None:
        if notification.test:
            return
        for alert in notification.alerts:
            until = now + RESOLVED_RESEND if alert.state == "resolved" else None
            self._known[alert.fingerprint] = (alert, until)
        for fp in [fp for fp, (_, until) in self._known.items() if until is not None and until <= now]:
            del self._known[fp]

    def body(self, alerts: Sequence[Alert], now: float) -> list[dict[str, Any]]:
        """Return the API body for these alerts."""
        valid_for = VALIDITY_FACTOR * self.resend_interval
        return [api_alert(a, now, valid_for) for a in alerts]

    async def _post(self, alerts: Sequence[Alert]) -> None:
        """Post to every Alertmanager; raise ChannelError when none accepted."""
        now = self._clock()
        raw = json.dumps(self.body(alerts, now), separators=(",", ":")).encode()
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, verify=self._verify
            )
        errors: list[str] = []
        for url in self._urls:
            try:
                await check_destination(url, self._allow_insecure)
                response = await self._client.post(url, content=raw, headers=self._headers)
            except ChannelError as exc:
                errors.append(str(exc))
                continue
            except httpx.HTTPError as exc:
                errors.append(f"{mask_url(url)}: {type(exc).__name__}")
                continue
            if response.is_success:
                self.posts += 1
            else:
                errors.append(f"{mask_url(url)} answered HTTP {response.status_code}: {response.text[:200]}")
        if len(errors) == len(self._urls):
            raise ChannelError(f"{self.name}: no Alertmanager accepted the alerts: {'; '.join(errors)}")
        for error in errors:
            _log.warning("alerts: %s: %s (the next resend retries it)", self.name, error)

    async def send(self, notification: Notification) -> None:
        now = self._clock()
        self._remember(notification, now)
        if self._resender is None or self._resender.done():
            self._resender = asyncio.get_running_loop().create_task(self._resend_loop())
        await self._post(list(notification.alerts))

    async def resend(self) -> int:
        """Re-post every pending alert now; return how many."""
        self._remember(Notification([]), self._clock())
        alerts = self.pending()
        if alerts:
            await self._post(alerts)
        return len(alerts)

    async def _resend_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resend_interval)
            try:
                await asyncio.wait_for(self.resend(), self._timeout)
            except (ChannelError, TimeoutError) as exc:
                _log.warning("alerts: %s: resend failed: %s", self.name, exc or "timed out")

    async def aclose(self) -> None:
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resender
            self._resender = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
