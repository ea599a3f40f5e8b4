"""`otel-sysops version`."""

from __future__ import annotations

import argparse
import platform

from otel_sysops import __version__


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("version", help="print the version")
    parser.set_defaults(func=_version)


def _version(args: argparse.Namespace) -> int:
    print(f"otel-sysops {__version__} (Python {platform.python_version()})")
    return 0
