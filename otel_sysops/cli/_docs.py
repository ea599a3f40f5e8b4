"""`otel-sysops docs`: regenerate (or check) the configuration and metrics references."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from otel_sysops._logging import setup_logging


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "docs", help="regenerate docs/configuration.md and docs/metrics-reference.md from the code"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the files (the default)")
    mode.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a committed file is stale"
    )
    parser.add_argument("--dir", type=Path, default=Path("docs"), help="the docs directory (default: docs)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    setup_logging("WARNING", "text")
    # Plugins that refuse this host log why; that is noise while generating docs. Restore the level
    # afterwards: the command also runs in-process (tests, embedding).
    quiet = logging.getLogger("otel_sysops")
    previous = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return _generate(args)
    finally:
        quiet.setLevel(previous)


def _generate(args: argparse.Namespace) -> int:
    from otel_sysops import _docs  # the whole pipeline: imported only when the command runs

    if args.check:
        stale = _docs.stale(args.dir)
        for name in stale:
            print(f"{args.dir / name}: stale; run `{_docs.REGENERATE}`", file=sys.stderr)
        return 1 if stale else 0
    for path in _docs.write_all(args.dir):
        print(f"wrote {path}")
    return 0
