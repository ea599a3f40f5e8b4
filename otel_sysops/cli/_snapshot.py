"""`otel-sysops snapshot`: one collection, printed."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("snapshot", help="collect once and print the result")
    add_settings_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--delay",
        type=float,
        default=1.0,
        help="seconds between the priming sample and the collection (rates need two)",
    )
    parser.set_defaults(func=_snapshot)


def _snapshot(args: argparse.Namespace) -> int:
    from otel_sysops._logging import setup_logging
    from otel_sysops.pipeline import Pipeline
    from otel_sysops.snapshot import to_json, to_table

    settings, _, _ = settings_from(args, roots=True)
    setup_logging("WARNING", settings.log.format)
    pipeline = Pipeline(settings)
    for name, reason in sorted(pipeline.skipped.items()):
        print(f"collector {name} skipped: {reason}", file=sys.stderr)
    try:
        pipeline.sample()  # rates and utilizations are deltas: prime them
        time.sleep(max(0.0, args.delay))
        result = pipeline.tick()
        doc = to_json(result.data, pipeline.resource)
    finally:
        pipeline.close(2.0)
    print(json.dumps(doc, indent=2, default=str) if args.json else to_table(doc))
    return 0
