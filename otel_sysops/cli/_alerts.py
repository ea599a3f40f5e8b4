"""`otel-sysops alerts test|list|history|silence`: test the channels; read and act through the local API."""

from __future__ import annotations

import argparse

from otel_sysops._logging import setup_logging
from otel_sysops.errors import ConfigError

from ._alerts_api import add_api_verbs
from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("alerts", help="work with the alert channels")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    test = verbs.add_parser(
        "test", help="send a test alert through each channel; print delivered or why not; exit 1 on failure"
    )
    add_settings_options(test)
    test.add_argument("--channel", metavar="NAME", help="only this channel")
    test.set_defaults(func=_test)
    add_api_verbs(verbs)


def _test(args: argparse.Namespace) -> int:
    import anyio  # the channels load when the command runs, not for `--help`

    from otel_sysops.alerts import build_manager

    settings, _, _ = settings_from(args)
    # The log channel writes its test line to the agent's log (stderr).
    setup_logging(settings.log.level, settings.log.format)
    manager = build_manager(settings)
    names = [r.name for r in manager.runners]
    if args.channel is not None and args.channel not in names:
        raise ConfigError(f"--channel {args.channel!r}: no such channel; configured: {', '.join(names)}")

    async def send() -> dict[str, str | None]:
        try:
            return await manager.send_test(args.channel)
        finally:
            await manager.aclose(5.0)

    results = anyio.run(send, backend="asyncio")
    width = max(len(n) for n in results)
    for name in names:
        if name in results:
            reason = results[name]
            print(f"{name:<{width}}  {'delivered' if reason is None else 'FAILED: ' + reason}")
    return 1 if any(r is not None for r in results.values()) else 0
