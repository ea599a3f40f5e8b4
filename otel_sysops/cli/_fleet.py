"""`otel-sysops fleet`: every host's heartbeat and the alerts firing, live or once as JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING

from otel_sysops.redact import mask_url_secrets

if TYPE_CHECKING:
    from nats.aio.client import Client

    from otel_sysops.bridge import FleetView
    from otel_sysops.settings import Settings

from ._common import add_settings_options, settings_from

# Longest pause between two connection attempts of the live view.
_MAX_RETRY = 30.0


def _status(text: str) -> None:
    print(f"otel-sysops fleet: {mask_url_secrets(text)}", file=sys.stderr, flush=True)


async def _connect_with_status(settings: Settings, once: bool) -> Client:
    """Connect, saying so on stderr; the live view retries an unreachable server with a status line.

    With --once, or when the server refuses the credentials or TLS, the error ends the command.
    """
    import anyio

    from otel_sysops.bridge import NatsError, connect

    where = ", ".join(settings.nats.servers())
    _status(f"connecting to {where} ...")
    attempt = 0
    while True:
        attempt += 1
        try:
            nc = await connect(settings.nats, name="otel-sysops fleet")
        except NatsError as exc:
            if once or exc.kind != "unreachable":
                raise
            delay = min(settings.nats.reconnect_wait * 2 ** min(attempt - 1, 16), _MAX_RETRY)
            _status(f"{exc}; attempt {attempt} failed, retrying in {delay:.1f}s (Ctrl-C to stop)")
            await anyio.sleep(delay)
            continue
        if attempt > 1:
            _status(f"connected to {where} after {attempt} attempts")
        return nc


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("fleet", help="show the fleet's hosts, stale hosts and alerts (over NATS)")
    add_settings_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--once", action="store_true", help="collect for --window seconds, print, exit")
    parser.add_argument(
        "--window", type=float, default=5.0, help="seconds to listen before printing with --once"
    )
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws (live)")
    parser.add_argument(
        "--queue",
        default="sysops-fleet",
        help="queue group: several fleet viewers in one group share the messages ('' to see all)",
    )
    parser.add_argument(
        "--stale-factor", type=float, default=3.0, help="heartbeat intervals without one before stale"
    )
    parser.set_defaults(func=_fleet)


def _fleet(args: argparse.Namespace) -> int:
    import anyio  # NATS and the bridge load when the command runs, not for `--help`

    from otel_sysops.bridge import FleetView, watch_fleet

    settings, _, _ = settings_from(args)
    if args.window <= 0 or args.refresh <= 0 or args.stale_factor <= 0:
        print("otel-sysops: --window, --refresh and --stale-factor must be positive", file=sys.stderr)
        return 2
    view = FleetView(args.stale_factor)

    async def main() -> None:
        nc = await _connect_with_status(settings, args.once)
        try:
            await watch_fleet(nc, settings.nats.subject_prefix, view, args.queue)
            if args.once:
                print(
                    f"otel-sysops fleet: listening on {settings.nats.subject_prefix}.*.heartbeat "
                    f"for {args.window:g}s",
                    file=sys.stderr,
                    flush=True,
                )
                await anyio.sleep(args.window)
                _print(view, args.json)
                return
            while True:
                await anyio.sleep(args.refresh)
                if nc.is_closed:
                    _status("lost the connection to NATS")
                    nc = await _connect_with_status(settings, False)
                    await watch_fleet(nc, settings.nats.subject_prefix, view, args.queue)
                if args.json:
                    print(json.dumps(view.to_json()), flush=True)
                else:
                    # Clear the screen and redraw from the top.
                    print("\x1b[H\x1b[2J" + view.render(time.time()), flush=True)
        finally:
            with anyio.CancelScope(shield=True):
                await nc.close()

    anyio.run(main, backend="asyncio")
    return 0


def _print(view: FleetView, as_json: bool) -> None:
    print(json.dumps(view.to_json(), indent=2) if as_json else view.render())
