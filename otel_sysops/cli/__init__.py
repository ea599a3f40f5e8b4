"""The `otel-sysops` command line (also `python -m otel_sysops`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from otel_sysops.errors import ConfigError, SysopsError

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
    "_hub",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in _COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="otel-sysops", description="OpenTelemetry-native host monitoring agent."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _modules():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (2 for bad configuration or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"otel-sysops: configuration error: {exc}", file=sys.stderr)
        return 2
    except SysopsError as exc:
        print(f"otel-sysops: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
