"""RFC 5424 syslog over UDP, TCP (RFC 6587 octet counting) or a unix socket."""

from __future__ import annotations

import errno
import os
import socket
from datetime import UTC, datetime

import anyio.to_thread

from ._errors import ChannelError
from ._format import alert_line, suppressed_line
from .channel import Alert, Notification
from .model import Severity

# RFC 5424 section 6.2.1 severities: 1 alert, 2 critical, 4 warning, 5 notice, 6 informational.
_SYSLOG_SEVERITY = {Severity.EMERGENCY: 1, Severity.CRITICAL: 2, Severity.WARNING: 4, Severity.INFO: 6}
_NOTICE = 5
# 32473 is the private enterprise number reserved for documentation and examples (RFC 5612).
SD_ID = "sysops@32473"


def _sd_value(text: str) -> str:
    # RFC 5424 section 6.3.3: escape '"', '\' and ']' in PARAM-VALUE.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _name(text: str, limit: int) -> str:
    # HOSTNAME, APP-NAME, MSGID: printable US-ASCII without spaces, or "-".
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def format_line(
    facility: int, app_name: str, hostname: str, severity: int, msgid: str, sd: str, msg: str
) -> str:
    """Return one RFC 5424 message (no trailing newline)."""
    stamp = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    pri = facility * 8 + severity
    header = f"<{pri}>1 {stamp} {_name(hostname, 255)} {_name(app_name, 48)} {os.getpid()} {_name(msgid, 32)}"
    return f"{header} {sd} {msg}"


def alert_record(facility: int, app_name: str, alert: Alert, test: bool) -> str:
    """Return the syslog line for one alert, with its identity as structured data."""
    severity = _NOTICE if alert.state == "resolved" else _SYSLOG_SEVERITY[alert.severity]
    params = {
        "fingerprint": alert.fingerprint,
        "rule": alert.rule,
        "metric": alert.metric,
        "severity": alert.severity.name.lower(),
        "state": alert.state,
        "id": alert.id,
    }
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    msgid = "test" if test else alert.state
    return format_line(facility, app_name, alert.host, severity, msgid, sd, alert_line(alert))


class SyslogChannel:
    """One syslog message per alert (plus one for a summary of what was held back)."""

    rate_limited = False  # a machine channel: never rate-limited into loss

    def __init__(
        self,
        name: str,
        min_severity: Severity,
        transport: str,
        address: str,
        timeout: float,
        facility: int = 3,
        app_name: str = "otel-sysops",
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._transport = transport
        self._address = address
        self._timeout = timeout
        self._facility = facility
        self._app_name = app_name

    def records(self, notification: Notification) -> list[str]:
        """Return the syslog lines for a notification."""
        lines = [
            alert_record(self._facility, self._app_name, a, notification.test) for a in notification.alerts
        ]
        summary = suppressed_line(notification)
        if summary:
            lines.append(
                format_line(self._facility, self._app_name, socket.gethostname(), 4, "summary", "-", summary)
            )
        return lines

    def _send_blocking(self, lines: list[str]) -> None:
        payloads = [line.encode("utf-8", "replace") for line in lines]
        if self._transport == "unix":
            self._send_unix(payloads)
            return
        host, _, port = self._address.rpartition(":")
        host = host.strip("[]")
        if self._transport == "udp":
            for family, kind, proto, _, addr in socket.getaddrinfo(host, int(port), type=socket.SOCK_DGRAM)[
                :1
            ]:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(self._timeout)
                    for payload in payloads:
                        sock.sendto(payload, addr)
            return
        with socket.create_connection((host, int(port)), timeout=self._timeout) as sock:
            # RFC 6587 section 3.4.1 octet counting: "LEN SP MSG".
            sock.sendall(b"".join(b"%d %s" % (len(p), p) for p in payloads))

    def _send_unix(self, payloads: list[bytes]) -> None:
        # /dev/log is a datagram socket; rsyslog's imuxsock may also be a stream socket.
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(self._timeout)
                sock.connect(self._address)
                for payload in payloads:
                    sock.send(payload)
        except OSError as exc:
            if exc.errno != errno.EPROTOTYPE:
                raise
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self._timeout)
                sock.connect(self._address)
                sock.sendall(b"".join(p + b"\n" for p in payloads))

    async def send(self, notification: Notification) -> None:
        lines = self.records(notification)
        try:
            await anyio.to_thread.run_sync(self._send_blocking, lines, abandon_on_cancel=True)
        except OSError as exc:
            raise ChannelError(
                f"{self.name}: syslog {self._transport} {self._address}: {exc.strerror or exc}"
            ) from None

    async def aclose(self) -> None:
        return None
