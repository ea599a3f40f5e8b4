"""`otel-sysops config show|check`."""

from __future__ import annotations

import argparse
import json

from otel_sysops.redact import mask_tree

from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("config", help="show or check the effective configuration")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="print the effective settings as JSON, secrets masked")
    add_settings_options(show)
    show.set_defaults(func=_show)
    check = verbs.add_parser("check", help="validate the settings; exit 2 with the first error")
    add_settings_options(check)
    check.set_defaults(func=_check)


def _show(args: argparse.Namespace) -> int:
    settings, _, _ = settings_from(args)
    # mode="json" renders every SecretStr as "**********"; passwords inside URLs are masked too.
    print(json.dumps(mask_tree(settings.model_dump(mode="json")), indent=2))
    return 0


def _check(args: argparse.Namespace) -> int:
    settings_from(args, roots=True)
    print("configuration ok")
    return 0
