"""`otel-sysops hub`: the fleet hub (needs `pip install 'otel-sysops[hub]'`); `hub keys` manages API keys."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

import anyio

from otel_sysops.errors import SysopsError

from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "hub", help="run the fleet hub: REST API and web UI over every agent's NATS subjects"
    )
    add_settings_options(parser)
    parser.set_defaults(func=_run)
    inner = parser.add_subparsers(dest="hub_command", metavar="SUBCOMMAND")
    keys = inner.add_parser("keys", help="manage the hub's API keys (stored hashed in its database)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add = keys_sub.add_parser("add", help="create a key and print it (shown once)")
    add.add_argument("name")
    add.add_argument("--role", choices=("viewer", "operator", "admin"), default="viewer")
    add.set_defaults(func=_keys_add)
    lst = keys_sub.add_parser("list", help="list the keys (names and roles, never the keys)")
    lst.set_defaults(func=_keys_list)
    rm = keys_sub.add_parser("rm", help="delete a key")
    rm.add_argument("name")
    rm.set_defaults(func=_keys_rm)
    for p in (add, lst, rm):
        add_settings_options(p)


def _need_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise SysopsError(f"the hub needs its extra: pip install 'otel-sysops[hub]' ({exc})") from exc


def _run(args: argparse.Namespace) -> int:
    settings, _, _ = settings_from(args)
    _need_extra()
    from otel_sysops._logging import setup_logging
    from otel_sysops.hub import Hub

    setup_logging(settings.log.level, settings.log.format)
    hub = Hub(settings)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        logging.getLogger("otel_sysops.hub").info(
                            "stopping on %s", signal.Signals(signum).name
                        )
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(stop_on_signal)
            address = await tg.start(hub.run)
            print(f"otel-sysops hub: http://{address[0]}:{address[1]}/", file=sys.stderr, flush=True)

    try:
        anyio.run(main, backend="asyncio")
    except BaseExceptionGroup as group:
        # A task that failed for a reason worth one line (NATS unreachable, port taken).
        found = group.subgroup(lambda e: isinstance(e, SysopsError))
        while isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        if found is not None:
            raise found from None
        raise
    finally:
        hub.store.close()
    return 0


def _store(args: argparse.Namespace) -> object:
    settings, _, _ = settings_from(args)
    from otel_sysops.hub import Store

    return Store(settings.hub.database_url())


def _keys_add(args: argparse.Namespace) -> int:
    from otel_sysops.hub import Store, digest, new_key

    store = _store(args)
    assert isinstance(store, Store)
    if any(k["name"] == args.name for k in store.list_keys()):
        print(f"otel-sysops hub keys: a key named {args.name!r} exists", file=sys.stderr)
        return 2
    key_id, key = new_key()
    store.add_key(key_id, args.name, args.role, digest(key))
    store.close()
    print(key)
    print(f"key {args.name} ({args.role}, id {key_id}) created; it is not shown again", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from otel_sysops.hub import Store

    store = _store(args)
    assert isinstance(store, Store)
    print(json.dumps(store.list_keys(), indent=2))
    store.close()
    return 0


def _keys_rm(args: argparse.Namespace) -> int:
    from otel_sysops.hub import Store

    store = _store(args)
    assert isinstance(store, Store)
    found = store.remove_key(args.name)
    store.close()
    if not found:
        print(f"otel-sysops hub keys: no key named {args.name!r}", file=sys.stderr)
        return 1
    return 0
