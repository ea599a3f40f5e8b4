"""Channels over HTTPS: Discord and Slack webhooks, the Telegram bot API, a generic JSON webhook."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ._alertmanager import webhook_payload
from ._errors import ChannelError
from ._format import (
    COLOURS,
    RESOLVED_COLOUR,
    alert_line,
    hosts_of,
    listed,
    state_of,
    suppressed_line,
    text_body,
    title,
    when,
)
from ._security import check_destination, mask_url
from .channel import Notification
from .model import Severity

USER_AGENT = "otel-sysops"


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class HttpChannel:
    """POST a JSON body to one URL; subclasses build the body."""

    def __init__(
        self,
        name: str,
        min_severity: Severity,
        url: str,
        timeout: float,
        allow_insecure: bool = False,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._url = url
        self._timeout = timeout
        self._allow_insecure = allow_insecure
        self._headers = {"User-Agent": USER_AGENT, **(headers or {})}
        self._verify: Any = ca_file or True
        self._client: httpx.AsyncClient | None = None
        # httpx logs every request's full URL at INFO; webhook URLs and bot tokens are secrets.
        quiet = logging.getLogger("httpx")
        if quiet.getEffectiveLevel() < logging.WARNING:
            quiet.setLevel(logging.WARNING)

    @property
    def masked_url(self) -> str:
        """Return the URL with its secret parts hidden."""
        return mask_url(self._url)

    def _secrets(self) -> list[str]:
        return [self._url, *self._headers.values()]

    def body(self, notification: Notification) -> dict[str, Any]:
        """Return the JSON body for a notification."""
        raise NotImplementedError

    def check_response(self, response: httpx.Response) -> None:
        """Raise ChannelError unless the service accepted the message."""
        if not response.is_success:
            raise ChannelError(f"{self.name}: {self.masked_url} answered HTTP {response.status_code}")

    async def send(self, notification: Notification) -> None:
        await check_destination(self._url, self._allow_insecure)
        raw = json.dumps(self.body(notification), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **self._headers, **self.extra_headers(raw)}
        if self._client is None:
            # No redirects: a 30x to an internal address would bypass the destination check.
            self._client = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, verify=self._verify
            )
        try:
            response = await self._client.post(self._url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            reason = _scrub(str(exc), self._secrets()) or "no detail"
            raise ChannelError(f"{self.name}: {self.masked_url}: {type(exc).__name__}: {reason}") from None
        self.check_response(response)

    def extra_headers(self, raw: bytes) -> dict[str, str]:
        """Return headers computed from the body (signatures)."""
        return {}

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class DiscordChannel(HttpChannel):
    """A Discord webhook: one embed per alert (at most 10, Discord's limit), coloured by severity."""

    def __init__(self, *args: Any, username: str = "otel-sysops", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._username = username

    def body(self, notification: Notification) -> dict[str, Any]:
        # Discord allows 10 embeds per message; the content line says how many there are in all.
        alerts = list(notification.alerts)
        embeds = []
        for alert in alerts[:10]:
            colour = RESOLVED_COLOUR if alert.state == "resolved" else COLOURS[alert.severity]
            fields = [
                {"name": "severity", "value": alert.severity.name.lower(), "inline": True},
                {"name": "host", "value": alert.host[:1024], "inline": True},
                {"name": "metric", "value": alert.metric[:1024], "inline": True},
            ]
            if alert.value is not None:
                fields.append({"name": "value", "value": f"{alert.value:g}", "inline": True})
            if alert.threshold is not None:
                fields.append({"name": "threshold", "value": f"{alert.threshold:g}", "inline": True})
            embeds.append(
                {
                    "title": f"[{alert.state.upper()}] {alert.rule}"[:256],
                    "description": alert.message[:4096],
                    "color": colour,
                    "fields": fields,
                    "timestamp": when(alert.ends_at or alert.starts_at),
                    "footer": {"text": f"fingerprint {alert.fingerprint}"},
                }
            )
        content = title(notification)
        if len(alerts) > 10:
            content += f" (showing 10 of {len(alerts)})"
        summary = suppressed_line(notification)
        if summary:
            content += f"\n{summary}"
        return {"username": self._username, "content": content[:2000], "embeds": embeds}


def _mrkdwn(text: str) -> str:
    # Slack mrkdwn: only &, < and > must be escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(HttpChannel):
    """A Slack incoming webhook: a header block, one section per alert, a context line for summaries."""

    def body(self, notification: Notification) -> dict[str, Any]:
        shown, more = listed(notification)
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": title(notification)[:150]}}
        ]
        blocks.extend(
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(alert_line(alert))[:3000]}}
            for alert in shown
        )
        notes = []
        if more:
            notes.append(f"... and {more} more")
        summary = suppressed_line(notification)
        if summary:
            notes.append(summary)
        if notes:
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(n)} for n in notes]}
            )
        return {"text": title(notification), "blocks": blocks}

    def check_response(self, response: httpx.Response) -> None:
        super().check_response(response)


class TelegramChannel(HttpChannel):
    """The Telegram bot API's `sendMessage` with HTML parse mode (every alert text escaped)."""

    def __init__(
        self,
        name: str,
        min_severity: Severity,
        token: str,
        chat_id: str,
        timeout: float,
        api_url: str = "https://api.telegram.org",
        allow_insecure: bool = False,
    ) -> None:
        super().__init__(
            name, min_severity, f"{api_url.rstrip('/')}/bot{token}/sendMessage", timeout, allow_insecure
        )
        self._token = token
        self._chat_id = chat_id

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), self._token]

    def body(self, notification: Notification) -> dict[str, Any]:
        shown, more = listed(notification)
        lines = [f"<b>{html.escape(title(notification))}</b>"]
        lines += [html.escape(alert_line(a)) for a in shown]
        if more:
            lines.append(f"... and {more} more")
        summary = suppressed_line(notification)
        if summary:
            lines.append(f"<i>{html.escape(summary)}</i>")
        text = "\n".join(lines)
        if len(text) > 4096:  # Telegram's limit; cut on a line boundary so no tag is left open
            text = text[: text.rfind("\n", 0, 4000)] + "\n..."
        return {
            "chat_id": self._chat_id,
            "text": text,
            "parse_mode": "HTML",
            "disable_web_page_preview": True,
        }

    def check_response(self, response: httpx.Response) -> None:
        try:
            ok = bool(response.json().get("ok"))
        except (ValueError, AttributeError):
            ok = False
        if not response.is_success or not ok:
            raise ChannelError(f"{self.name}: Telegram API answered HTTP {response.status_code}")


class WebhookChannel(HttpChannel):
    """A generic JSON webhook, optionally signed with HMAC-SHA256 over the raw body."""

    rate_limited = False  # a machine channel: never rate-limited into loss

    def __init__(
        self,
        *args: Any,
        secret: str | None = None,
        signature_header: str = "X-Sysops-Signature",
        format: str = "sysops",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._secret = secret
        self._signature_header = signature_header
        self.format = format

    def _secrets(self) -> list[str]:
        return [*super()._secrets(), self._secret or ""]

    def body(self, notification: Notification) -> dict[str, Any]:
        if self.format == "alertmanager":
            return webhook_payload(notification, self.name)
        return {
            "version": 1,
            "status": state_of(notification).lower(),
            "severity": notification.severity.name.lower(),
            "title": title(notification),
            "host": hosts_of(notification),
            "alerts": [a.to_dict() for a in notification.alerts],
            "suppressed": dict(notification.suppressed),
            "test": notification.test,
            "text": text_body(notification),
            "sent_at": time.time(),
        }

    def extra_headers(self, raw: bytes) -> dict[str, str]:
        if not self._secret:
            return {}
        digest = hmac.new(self._secret.encode(), raw, hashlib.sha256).hexdigest()
        return {self._signature_header: f"sha256={digest}"}
