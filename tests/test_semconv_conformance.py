"""Every instrument that carries a semantic-conventions name matches the installed
opentelemetry-semantic-conventions package: same instrument kind, same unit, not deprecated.

The package's `create_*` functions are the definitions: each is called on a recording meter to
learn the kind and unit the conventions give a metric. Names the package does not define are ours
(`sysops.*`, `otel_sysops.*`) and are listed in docs/metrics.md instead.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from typing import Any

import opentelemetry.semconv._incubating.metrics as incubating
import pytest
from opentelemetry.semconv.version import __version__ as semconv_version

from otel_sysops.cli._rules import instruments
from otel_sysops.settings import load_settings

_KINDS = {
    "create_counter": "counter",
    "create_observable_counter": "counter",
    "create_up_down_counter": "updowncounter",
    "create_observable_up_down_counter": "updowncounter",
    "create_gauge": "gauge",
    "create_observable_gauge": "gauge",
    "create_histogram": "histogram",
}


@dataclass(frozen=True)
class Definition:
    kind: str
    unit: str
    deprecated: bool


class _Recorder:
    """Answers the create_* calls of a Meter by remembering what was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    def __getattr__(self, method: str) -> Any:
        kind = _KINDS[method]

        def create(name: str, *args: Any, unit: str = "", **kwargs: Any) -> None:
            self.asked.append((name, kind, unit))

        return create


def definitions() -> dict[str, Definition]:
    """Return metric name -> the conventions' definition, from every metrics module of the package."""
    out: dict[str, Definition] = {}
    for module_info in pkgutil.iter_modules(incubating.__path__):
        module = importlib.import_module(f"{incubating.__name__}.{module_info.name}")
        for fname, fn in inspect.getmembers(module, inspect.isfunction):
            if not fname.startswith("create_"):
                continue
            recorder = _Recorder()
            params = inspect.signature(fn).parameters
            fn(recorder, *([None] * (len(params) - 1)))
            ((name, kind, unit),) = recorder.asked
            out[name] = Definition(kind, unit, (inspect.getdoc(fn) or "").startswith("Deprecated"))
    return out


DEFINITIONS = definitions()


@pytest.fixture(scope="module")
def ours() -> dict[str, tuple[str, str]]:
    return instruments(load_settings(None, {"prometheus": {"enabled": False}}, environ={}))


def test_the_package_has_the_definitions() -> None:
    # The conformance below is against this version (docs/metrics-reference.md states it).
    assert semconv_version
    assert DEFINITIONS["system.memory.usage"] == Definition("updowncounter", "By", False)
    assert DEFINITIONS["process.open_file_descriptor.count"].deprecated


def test_no_deprecated_name_is_emitted(ours: dict[str, tuple[str, str]]) -> None:
    deprecated = sorted(n for n in ours if n in DEFINITIONS and DEFINITIONS[n].deprecated)
    assert deprecated == []


def test_kind_and_unit_match_the_conventions(ours: dict[str, tuple[str, str]]) -> None:
    conventions = {n: v for n, v in ours.items() if n in DEFINITIONS}
    assert len(conventions) > 40
    wrong = {
        name: {"ours": (kind.removeprefix("churning "), unit), "semconv": (d.kind, d.unit)}
        for name, (unit, kind) in conventions.items()
        if (kind.removeprefix("churning "), unit) != ((d := DEFINITIONS[name]).kind, d.unit)
    }
    assert wrong == {}


# Names outside our namespaces that the package does not define, and why they are kept.
NOT_IN_THE_PACKAGE = {
    # The OpenTelemetry Collector's hostmetrics receiver names (load has no semantic convention);
    # kept so data from either agent lands on the same series.
    "system.cpu.load_average.1m": "Collector hostmetrics",
    "system.cpu.load_average.5m": "Collector hostmetrics",
    "system.cpu.load_average.15m": "Collector hostmetrics",
}


def test_other_names_are_in_our_namespaces_or_listed(ours: dict[str, tuple[str, str]]) -> None:
    others = sorted(n for n in ours if n not in DEFINITIONS)
    assert [n for n in others if not n.startswith(("sysops.", "otel_sysops."))] == sorted(NOT_IN_THE_PACKAGE)
