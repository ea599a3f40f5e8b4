"""Configure the agent's own log: readable lines by default, JSON lines on request."""

from __future__ import annotations

import json
import logging
import sys
import time

from otel_sysops.redact import mask_url_secrets

_STD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format each record as one JSON object per line, with any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return mask_url_secrets(json.dumps(out, default=str))


class TextFormatter(logging.Formatter):
    """The readable line, with URL secrets masked (as in the JSON format)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_url_secrets(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send the log to stderr in the chosen format, replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK logs every failed export at ERROR with a traceback; our sink reports failures itself.
    logging.getLogger("opentelemetry.exporter.otlp").setLevel(logging.CRITICAL)
