"""Settings of the local API and page (`[api]`, `SYSOPS_API__*`), served on the agent's HTTP listener."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from ._base import Section


class ApiSettings(Section):
    """The JSON API under /api/v1/, the live event stream, the page at / and the alert history."""

    # Off: only /metrics, /healthz and /readyz are served.
    enabled: bool = True
    # The page at / (the API stays on when this is off).
    page: bool = True
    # Bearer token that mutating calls (silences) need; none: mutating calls are refused.
    token: SecretStr | None = None
    # A file holding the token (a mounted secret), read at start; instead of `token`.
    token_file: Path | None = None
    # Who may read without the token: loopback clients (127.0.0.0/8, ::1), anyone, or nobody.
    read_access: Literal["loopback", "anyone", "token"] = "loopback"
    # Alert history (SQLite). None: alerts.db in the state directory (in memory when there is none).
    history_path: Path | None = None
    history_max_age: float = Field(30 * 86400.0, gt=0, description="seconds of alert history kept")
    history_max_rows: int = Field(100_000, ge=100, le=10_000_000, description="alerts kept in the history")
    # Changes waiting for the history writer; past this they are dropped (and counted).
    history_queue: int = Field(10_000, ge=10, le=1_000_000)
    # Largest page `alerts/history` returns (a bigger `limit` is a 400).
    max_page_size: int = Field(1000, ge=1, le=10_000)
    # Live event streams (/api/v1/events) at once; each holds an HTTP thread.
    max_stream_clients: int = Field(8, ge=1, le=64)
    # Events queued per stream client; a client that falls this far behind is dropped.
    stream_queue: int = Field(64, ge=4, le=10_000)

    @model_validator(mode="after")
    def _one_token(self) -> ApiSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token_file, not both")
        return self
