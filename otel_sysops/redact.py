"""Ground floor: mask the secrets a URL can carry (`nats://user:password@host`, `nats://token@host`).

Applied to every log line the agent writes, to `config show`, and to the error lines of the CLI.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://userinfo@ : the userinfo ends at the last '@' before the host (no '/', no space in it).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/\s@'\"]+)@")


def _mask(match: re.Match[str]) -> str:
    info = match.group("info")
    user, sep, _ = info.partition(":")
    # user:password keeps the user; a lone userinfo (a NATS token) is a secret as a whole.
    return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"


def mask_url_secrets(text: str) -> str:
    """Return `text` with the password (or token) of every URL in it replaced by ***."""
    if "://" not in text or "@" not in text:
        return text
    return _USERINFO.sub(_mask, text)


def mask_tree(value: Any) -> Any:
    """Return a JSON-like tree (dicts, lists, strings) with every string masked."""
    if isinstance(value, str):
        return mask_url_secrets(value)
    if isinstance(value, dict):
        return {k: mask_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_tree(v) for v in value]
    return value
