"""`otel-sysops alerts list|history|silence add|silence rm|silence list`, through the agent's API."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otel_sysops.errors import ConfigError, SysopsError

from ._common import add_settings_options, settings_from

if TYPE_CHECKING:
    from otel_sysops.settings import Settings


def add_api_verbs(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the verbs that talk to a running agent's /api/v1/."""
    listing = verbs.add_parser("list", help="print the alerts firing now on the running agent")
    _common(listing)
    listing.set_defaults(func=_list)

    history = verbs.add_parser("history", help="print the alert history of the running agent, newest first")
    _common(history)
    history.add_argument("--since", default="24h", help="epoch seconds, ISO 8601, or a duration ago (24h)")
    history.add_argument("--until", help="epoch seconds, ISO 8601, or a duration ago")
    history.add_argument("--severity", action="append", default=[], help="info, warning, critical, emergency")
    history.add_argument("--rule", action="append", default=[], help="rule name or glob (repeatable)")
    history.add_argument("--state", choices=("firing", "resolved"))
    history.add_argument(
        "--match", action="append", default=[], metavar="KEY=VALUE", help="attribute or label (repeatable)"
    )
    history.add_argument("--limit", type=int, default=50, help="alerts per page (default 50)")
    history.add_argument("--offset", type=int, default=0)
    history.set_defaults(func=_history)

    silence = verbs.add_parser("silence", help="list, add or remove silences on the running agent")
    actions = silence.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="silence the alerts matching every --match for --duration")
    _common(add)
    add.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="KEY=VALUE",
        help="rule, metric, severity, an attribute or a label; globs allowed (repeatable)",
    )
    add.add_argument("--duration", required=True, help="seconds or 30m, 2h, 7d")
    add.add_argument("--comment", default="")
    add.set_defaults(func=_silence_add)
    rm = actions.add_parser("rm", help="remove a silence by id")
    _common(rm)
    rm.add_argument("id")
    rm.set_defaults(func=_silence_rm)
    ls = actions.add_parser("list", help="print the silences in force")
    _common(ls)
    ls.set_defaults(func=_silence_list)


def _common(parser: argparse.ArgumentParser) -> None:
    add_settings_options(parser)
    parser.add_argument(
        "--url", help="the agent's HTTP address (default: from the settings, http://127.0.0.1:9464)"
    )
    parser.add_argument("--token-file", type=Path, help="file holding the API token (default: api.token)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON")


class _Client:
    def __init__(self, args: argparse.Namespace) -> None:
        settings, _, _ = settings_from(args)
        self.url = (args.url or default_url(settings)).rstrip("/")
        self.token = _token(args, settings)

    def call(self, method: str, path: str, params: Any = None, body: Any = None) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(
                method, f"{self.url}/api/v1/{path}", params=params, json=body, headers=headers, timeout=10.0
            )
        except httpx.HTTPError as exc:
            raise SysopsError(
                f"cannot reach the agent's API at {self.url} ({exc}); is the agent running with api.enabled?"
            ) from exc
        try:
            doc = response.json()
        except ValueError:
            doc = {"error": response.text[:200]}
        if response.status_code >= 400:
            raise SysopsError(f"{method} /api/v1/{path}: {response.status_code}: {doc.get('error', doc)}")
        return doc


def default_url(settings: Settings) -> str:
    """Return the agent's HTTP address from the settings (a wildcard bind is reached on loopback)."""
    host = settings.prometheus.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.prometheus.port}"


def _token(args: argparse.Namespace, settings: Settings) -> str | None:
    path = args.token_file or settings.api.token_file
    if path is not None:
        try:
            return str(Path(path).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ConfigError(f"--token-file {path}: cannot read ({exc.strerror})") from exc
    return settings.api.token.get_secret_value() if settings.api.token is not None else None


def _print_json(doc: Any) -> int:
    json.dump(doc, sys.stdout, indent=2)
    print()
    return 0


def _series(alert: dict[str, Any]) -> str:
    attrs = ",".join(f"{k}={v}" for k, v in sorted(alert.get("attributes", {}).items()))
    return f"{alert['metric']}{{{attrs}}}" if attrs else alert["metric"]


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _list(args: argparse.Namespace) -> int:
    doc = _Client(args).call("GET", "alerts")
    if args.json:
        return _print_json(doc)
    alerts = doc["alerts"]
    if not alerts:
        print("no alert is firing")
        return 0
    rows = [["SEVERITY", "RULE", "SERIES", "SINCE", "SILENCED", "MESSAGE"]]
    for a in alerts:
        silenced = a.get("silenced_by") or "-"
        rows.append([a["severity"], a["rule"], _series(a), _when(a["starts_at"]), silenced, a["message"]])
    _table(rows)
    return 0


def _history(args: argparse.Namespace) -> int:
    params: list[tuple[str, str]] = [
        ("since", args.since),
        ("limit", str(args.limit)),
        ("offset", str(args.offset)),
    ]
    if args.until:
        params.append(("until", args.until))
    params += [("severity", s) for s in args.severity] + [("rule", r) for r in args.rule]
    params += [("match", m) for m in args.match]
    if args.state:
        params.append(("state", args.state))
    doc = _Client(args).call("GET", "alerts/history", params=params)
    if args.json:
        return _print_json(doc)
    if not doc["alerts"]:
        print("no alert in that window")
        return 0
    rows = [["SEVERITY", "RULE", "SERIES", "FIRED", "RESOLVED", "NOTIFIED", "MESSAGE"]]
    for a in doc["alerts"]:
        resolved = _when(a["resolved_at"]) if a["resolved_at"] else "firing"
        if a["end_reason"] not in (None, "resolved"):
            resolved += f" ({a['end_reason']})"
        sent = sorted({f"{n['channel']}:{'ok' if n['delivered'] else 'failed'}" for n in a["notifications"]})
        rows.append(
            [
                a["severity"],
                a["rule"],
                _series(a),
                _when(a["fired_at"]),
                resolved,
                ",".join(sent) or "-",
                a["message"],
            ]
        )
    _table(rows)
    shown = doc["offset"] + len(doc["alerts"])
    if shown < doc["total"]:
        print(f"({shown} of {doc['total']}; --offset {shown} for more)")
    return 0


def _matchers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--match {item!r}: expected KEY=VALUE, e.g. rule=sysops.cpu.high")
        out[key] = value
    return out


def _silence_add(args: argparse.Namespace) -> int:
    duration: Any = float(args.duration) if args.duration.replace(".", "", 1).isdigit() else args.duration
    body = {
        "matchers": _matchers(args.match),
        "duration": duration,
        "comment": args.comment,
        "created_by": "cli",
    }
    doc = _Client(args).call("POST", "silences", body=body)
    if args.json:
        return _print_json(doc)
    print(f"{doc['id']}  until {_when(doc.get('ends_at'))}")
    return 0


def _silence_rm(args: argparse.Namespace) -> int:
    doc = _Client(args).call("DELETE", f"silences/{args.id}")
    if args.json:
        return _print_json(doc)
    print(f"removed {doc['removed']}")
    return 0


def _silence_list(args: argparse.Namespace) -> int:
    doc = _Client(args).call("GET", "silences")
    if args.json:
        return _print_json(doc)
    if not doc["silences"]:
        print("no silence in force")
        return 0
    rows = [["ID", "MATCHERS", "UNTIL", "BY", "COMMENT"]]
    for s in doc["silences"]:
        matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
        rows.append([s["id"], matchers, _when(s["ends_at"]), s["created_by"], s["comment"]])
    _table(rows)
    return 0
