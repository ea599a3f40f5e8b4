"""`otel-sysops inventory`: the host's hardware and software inventory as JSON."""

from __future__ import annotations

import argparse
import json

from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("inventory", help="print the host's inventory (OS, CPU, memory, disks, ...)")
    add_settings_options(parser)
    parser.add_argument("--compact", action="store_true", help="one line of JSON instead of indented")
    parser.set_defaults(func=_inventory)


def _inventory(args: argparse.Namespace) -> int:
    from otel_sysops.inventory import Roots, collect_inventory  # loaded when run, not for `--help`
    from otel_sysops.resource import host_name

    settings, _, _ = settings_from(args, roots=True)
    roots = Roots(settings.procfs, settings.sysfs, settings.host_root)
    doc = collect_inventory(roots, host_name(settings), settings=settings)
    print(json.dumps(doc, indent=None if args.compact else 2, sort_keys=False))
    return 0
