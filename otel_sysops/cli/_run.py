"""`otel-sysops run`: the agent."""

from __future__ import annotations

import argparse
import logging

from ._common import add_settings_options, settings_from


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the agent (embedded defaults need no configuration)")
    add_settings_options(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here so `version`, `config` and `--help` stay light.
    import anyio

    from otel_sysops._logging import setup_logging
    from otel_sysops._memory import limit_malloc_arenas, pin_mmap_threshold, tune_gc
    from otel_sysops.app import Agent, default_service_factories

    settings, config, overrides = settings_from(args, roots=True)
    setup_logging(settings.log.level, settings.log.format)
    pin_mmap_threshold()
    tune_gc()
    limit_malloc_arenas()
    agent = Agent(settings, config, overrides, default_service_factories())
    logging.getLogger("otel_sysops").info(
        "otel-sysops started: %d collectors, %d analyzers, interval %ss",
        len(agent.pipeline.collectors),
        len(agent.pipeline.analyzers),
        settings.interval,
    )
    return anyio.run(agent.run, backend="asyncio")
