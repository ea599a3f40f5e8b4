"""Options shared by the subcommands that load settings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otel_sysops.errors import ConfigError

if TYPE_CHECKING:  # the settings (pydantic) load when a command reads them, not for `--help`
    from otel_sysops.settings import Settings


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add --config, --interval and --set to a subcommand."""
    parser.add_argument("--config", type=Path, help="TOML settings file (also SYSOPS_CONFIG)")
    parser.add_argument("--interval", type=float, help="seconds between collections (SYSOPS_INTERVAL)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set prometheus.port=9500 (repeatable)",
    )


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Turn --interval and --set KEY=VALUE into nested overrides (values parsed as JSON when possible)."""
    out: dict[str, Any] = {}
    if getattr(args, "interval", None) is not None:
        out["interval"] = args.interval
    for item in getattr(args, "sets", []):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. prometheus.port=9500")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            from otel_sysops.settings import is_string_list

            # A list of strings also takes a plain comma list: --set instrumentation.disabled=gpu,cgroup
            value = [v.strip() for v in raw.split(",") if v.strip()] if is_string_list(key) else raw
        except RecursionError as exc:
            raise ConfigError(f"--set {key}: JSON nested too deeply") from exc
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return out


def settings_from(
    args: argparse.Namespace, *, roots: bool = False
) -> tuple[Settings, Path | None, dict[str, Any]]:
    """Load the settings for a subcommand; raise ConfigError on bad input.

    With `roots` (the commands that read the host), a procfs or sysfs root that does not look
    like one is a configuration error too.
    """
    overrides = overrides_from(args)
    config = getattr(args, "config", None)
    from otel_sysops.settings import check_roots, load_settings

    settings = load_settings(config, overrides)
    if roots:
        check_roots(settings, config)
    return settings, config, overrides
