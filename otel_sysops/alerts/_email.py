"""Mail over SMTP (stdlib smtplib on a worker thread): STARTTLS, implicit TLS or plain; text and HTML."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import anyio.to_thread

from ._errors import ChannelError
from ._format import alert_line, listed, suppressed_line, text_body, title
from .channel import Notification
from .model import Severity


class EmailChannel:
    """Send each notification as one mail to every recipient."""

    def __init__(
        self,
        name: str,
        min_severity: Severity,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        timeout: float,
        security: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.name = name
        self.min_severity = min_severity
        self._host = host
        self._port = port
        self._sender = sender
        self._to = list(to)
        self._timeout = timeout
        self._security = security
        self._username = username
        self._password = password
        self._ca_file = ca_file

    def message(self, notification: Notification) -> EmailMessage:
        """Return the mail: a plain-text part and an HTML alternative."""
        msg = EmailMessage()
        msg["Subject"] = title(notification)
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self._sender.rpartition("@")[2] or None)
        msg.set_content(text_body(notification))
        shown, more = listed(notification)
        items = "".join(f"<li>{html.escape(alert_line(a))}</li>" for a in shown)
        extra = f"<p>... and {more} more</p>" if more else ""
        summary = suppressed_line(notification)
        note = f"<p><i>{html.escape(summary)}</i></p>" if summary else ""
        msg.add_alternative(
            f"<html><body><h3>{html.escape(title(notification))}</h3><ul>{items}</ul>{extra}{note}</body></html>",
            subtype="html",
        )
        return msg

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._ca_file)

    def _send_blocking(self, msg: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self._security == "tls":
            smtp = smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=self._context())
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with smtp:
            smtp.ehlo()
            if self._security == "starttls":
                smtp.starttls(context=self._context())
                smtp.ehlo()
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(msg)

    async def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        where = f"smtp://{self._host}:{self._port}"
        try:
            await anyio.to_thread.run_sync(self._send_blocking, msg, abandon_on_cancel=True)
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelError(
                f"{self.name}: {where}: authentication failed (code {exc.smtp_code})"
            ) from None
        except smtplib.SMTPException as exc:
            reason = str(exc).replace(self._password or "\0", "***")
            raise ChannelError(f"{self.name}: {where}: {type(exc).__name__}: {reason}") from None
        except (OSError, ssl.SSLError) as exc:
            raise ChannelError(f"{self.name}: {where}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        return None
