"""`otel-sysops analyze INPUT --output OUTPUT`: the live agent's anomaly score over CSV files."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from otel_sysops.errors import SysopsError

from ._common import settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "analyze",
        help="score CSV files (timestamp,value) with the streaming anomaly detectors",
        description=(
            "Replay CSV files with columns timestamp,value through the same streaming ensemble score "
            "the agent computes each tick. INPUT is a file or a directory (walked recursively and "
            "mirrored under OUTPUT); each output has timestamp,value,anomaly_score, one row per input row."
        ),
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (also SYSOPS_CONFIG)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set analyzers.anomaly.seasonal=true (repeatable)",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="CSV file or directory of CSV files")
    parser.add_argument("--output", "-o", type=Path, required=True, help="output file or directory")
    parser.add_argument(
        "--hosts",
        action="store_true",
        help=(
            "treat every folder of CSV files as the series of one host and also write its host "
            "incident score (mean of the 3 highest series scores) to host-score.csv there"
        ),
    )
    parser.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from analyzers.ensemble import EnsembleParams
    from analyzers.replay import ReplayInputError, replay

    settings, _, _ = settings_from(args)
    params = replace(EnsembleParams(), seasonal=settings.analyzers.anomaly.seasonal)
    try:
        written = replay(args.input, args.output, params, hosts=args.hosts)
    except ReplayInputError as exc:
        # Bad input is a usage error: one line naming the file and line, exit 2, nothing written.
        print(f"otel-sysops analyze: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        raise SysopsError(f"{args.output}: cannot be written ({exc.strerror})") from exc
    print(f"analyzed {len(written)} file(s) into {args.output}", file=sys.stderr)
    return 0
