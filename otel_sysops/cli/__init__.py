"""The `otel-sysops` command line (also `python -m otel_sysops`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from otel_sysops.errors import ConfigError, SysopsError
from otel_sysops.redact import mask_url_secrets

# Each module adds its subcommand(s) with `add_parser(subparsers)`; `args.func(args)` returns the exit code.
_COMMAND_MODULES = (
    "_run",
    "_snapshot",
    "_config",
    "_version",
    "_docs",
    "_alerts",
    "_inventory",
    "_fleet",
    "_analyze",
    "_rules",
    "_hub",
)


# The module of each command whose module adds that one command: a command line naming one of
# these imports only its module, so `version` and `config` do not pay for the rest. Any other
# command line (`--help`, a command not listed here) builds the whole parser.
_SINGLE = {
    "run": "_run",
    "snapshot": "_snapshot",
    "config": "_config",
    "version": "_version",
    "docs": "_docs",
    "alerts": "_alerts",
    "inventory": "_inventory",
    "fleet": "_fleet",
    "analyze": "_analyze",
    "rules": "_rules",
    "hub": "_hub",
}


def _modules(names: Sequence[str] = _COMMAND_MODULES) -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Return the argument parser: with every subcommand, or only the one `argv` names."""
    parser = argparse.ArgumentParser(
        prog="otel-sysops", description="OpenTelemetry-native host monitoring agent."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    first = next((a for a in argv or () if not a.startswith("-")), None)
    only = _SINGLE.get(first or "")
    single = only in _COMMAND_MODULES and not (argv and argv[0].startswith("-"))
    wanted = [only] if single and only is not None else _COMMAND_MODULES
    for module in _modules(wanted):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (2 for bad configuration or usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"otel-sysops: configuration error: {mask_url_secrets(str(exc))}", file=sys.stderr)
        return 2
    except SysopsError as exc:
        print(f"otel-sysops: {mask_url_secrets(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
