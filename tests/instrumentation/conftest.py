"""Helpers for the collector tests: frozen hosts copied to tmp_path, a real pipeline, its points."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import MetricsData, NumberDataPoint

from otel_sysops.pipeline import Pipeline, iter_points
from otel_sysops.plugin import Collector, CollectorContext
from otel_sysops.settings import Settings
from tests.conftest import FIXTURES

Key = tuple[str, frozenset[tuple[str, Any]]]


def points(data: MetricsData, prefix: str = "") -> dict[Key, float]:
    """Return every point of a collection as {(metric, attributes): value}, our own metrics left out."""
    out: dict[Key, float] = {}
    for metric, point in iter_points(data):
        if metric.name.startswith("otel_sysops.") or not metric.name.startswith(prefix):
            continue
        assert isinstance(point, NumberDataPoint), f"{metric.name} is not a number"
        key = (metric.name, frozenset(dict(point.attributes or {}).items()))
        assert key not in out, f"duplicate point {key}"
        out[key] = point.value
    return out


def key(name: str, **attrs: Any) -> Key:
    """Build a point key; attribute names with dots are passed as `**{"a.b": v}`."""
    return (name, frozenset(attrs.items()))


def of(values: dict[Key, float], name: str) -> dict[frozenset[tuple[str, Any]], float]:
    """Return one metric's points by attribute set."""
    return {attrs: v for (n, attrs), v in values.items() if n == name}


class Host:
    """A frozen host tree copied to a temporary directory, so a test can advance it a tick."""

    def __init__(self, source: Path, root: Path) -> None:
        self.source = source
        self.root = root
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("tick2"))

    @property
    def procfs(self) -> Path:
        return self.root / "proc"

    @property
    def sysfs(self) -> Path:
        return self.root / "sys"

    def advance(self, overlay: str = "tick2") -> None:
        """Copy the fixture's next-tick files over the current ones."""
        shutil.copytree(self.source / overlay, self.root, dirs_exist_ok=True)


@pytest.fixture
def numa_host(tmp_path: Path) -> Host:
    return Host(FIXTURES / "numa2-edac", tmp_path / "host")


@pytest.fixture
def psi_host(tmp_path: Path) -> Host:
    return Host(FIXTURES / "psi-host", tmp_path / "host")


Build = Callable[..., tuple[Pipeline, Settings]]


@pytest.fixture
def pipeline_for(make_settings: Callable[..., Settings]) -> Iterator[Build]:
    """Return build(host, **settings) -> (pipeline, settings); every pipeline built is closed after."""
    built: list[Pipeline] = []

    def build(host: Host | None = None, **overrides: Any) -> tuple[Pipeline, Settings]:
        if host is not None:
            overrides.setdefault("procfs", host.procfs)
            overrides.setdefault("sysfs", host.sysfs)
            overrides.setdefault("host_root", host.root)
        settings = make_settings(**overrides)
        pipe = Pipeline(settings, load=False)
        built.append(pipe)
        return pipe, settings

    yield build
    for pipe in built:
        pipe.close(1.0)


def add(pipe: Pipeline, settings: Settings, name: str, cls: type[Collector[Any]], **kwargs: Any) -> Any:
    """Construct a collector the way the pipeline does (shared tick cache and error counter), add it."""
    collector = cls(CollectorContext(name, settings, pipe.files, pipe.errors), **kwargs)
    pipe.add_collector(name, collector)
    return collector


def errors(pipe: Pipeline, name: str) -> dict[str, int]:
    """Return the error counts of one collector by kind."""
    return {kind: n for (plugin, kind), n in pipe.errors.snapshot().items() if plugin == name}
