"""Render one collection as Prometheus text 0.0.4 and OpenMetrics 1.0 in a single pass.

The translation is our own (names in `_naming`), straight from `MetricsData`: each series carries
only its own labels (an empty-valued attribute is left out, never rendered as `=""`), and the
`name{labels} ` prefix of every series is cached across ticks, so a tick pays for a dictionary
lookup and a number per point. Both formats share the sample lines; only family headers differ.
Series are those of this collection only: a series that did not report is simply not rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    Sum,
)

from ._naming import Kind, label_pairs, metric_name

SeriesKey = tuple[str, tuple[tuple[str, object], ...]]


def _help_text(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _help_om(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _label_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs)


_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def number(value: float | int) -> str:
    """Return a sample value as both formats spell it."""
    if type(value) is float:
        text = repr(value)
        return _SPECIAL.get(text, text)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _kind(body: object) -> Kind | None:
    if isinstance(body, Sum):
        return "counter" if body.is_monotonic else "updowncounter"
    if isinstance(body, Gauge):
        return "gauge"
    if isinstance(body, Histogram):
        return "histogram"
    return None


@dataclass(slots=True)
class _Family:
    name: str
    kind: Kind
    text_head: str
    om_head: str
    lines: list[str]
    seen: set[str]


@dataclass(frozen=True, slots=True)
class Rendered:
    """The exposition of one collection in both formats, and how many samples it holds."""

    text: bytes
    openmetrics: bytes
    samples: int


def _hashable(attributes: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    items = tuple(attributes.items())
    for _, value in items:
        if isinstance(value, list):
            return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in items)
    return items


@dataclass(frozen=True, slots=True)
class _Layout:
    """One number metric's series as last rendered: identities, prefixes, whether all distinct."""

    prom: str
    idents: list[tuple[tuple[str, object], ...]]
    prefixes: list[str]
    distinct: bool


class ExpositionRenderer:
    """Turn each collection into exposition bytes; keeps per-series label strings of live series.

    Per number metric (by its position in the collection) the series' `name{labels} ` prefixes
    are kept across ticks: while a metric reports the same attribute sets in the same order, a
    tick costs comparing its identity list and formatting the numbers."""

    def __init__(self) -> None:
        self._prefixes: dict[SeriesKey, str] = {}
        self._layout: list[_Layout | None] = []
        self._heads: dict[tuple[str, str, str], tuple[str, Kind, str, str]] = {}
        self._target: tuple[object, str] | None = None

    def _head(self, name: str, unit: str, description: str, kind: Kind) -> tuple[str, Kind, str, str]:
        key = (name, unit, description + "\0" + kind)
        cached = self._heads.get(key)
        if cached is None:
            prom = metric_name(name, unit, kind)
            ptype = "gauge" if kind == "updowncounter" else kind
            text = f"# HELP {prom} {_help_text(description)}\n# TYPE {prom} {ptype}\n"
            om_name = prom.removesuffix("_total") if kind == "counter" else prom
            om = f"# HELP {om_name} {_help_om(description)}\n# TYPE {om_name} {ptype}\n"
            cached = self._heads[key] = (prom, kind, text, om)
        return cached

    def _target_info(self, resource: object, attributes: Mapping[str, object]) -> str:
        if self._target is not None and self._target[0] is resource:
            return self._target[1]
        pairs = label_pairs(attributes.items())
        line = f"target_info{{{_labels(pairs)}}} 1\n" if pairs else ""
        self._target = (resource, line)
        return line

    def render(self, data: MetricsData) -> Rendered:
        """Return the exposition of `data`."""
        old, self._prefixes = self._prefixes, {}
        layout, self._layout = self._layout, []
        families: dict[str, _Family] = {}
        target = ""
        samples = 0
        for rm in data.resource_metrics:
            if not target:
                target = self._target_info(rm.resource, rm.resource.attributes)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    pos = len(self._layout)
                    samples += self._metric(metric, families, old, layout[pos] if pos < len(layout) else None)
        text: list[str] = []
        om: list[str] = []
        if target:
            text.append("# HELP target_info Target metadata\n# TYPE target_info gauge\n" + target)
            om.append("# HELP target Target metadata\n# TYPE target info\n" + target)
            samples += 1
        for family in families.values():
            if family.lines:
                chunk = "".join(family.lines)
                text.append(family.text_head + chunk)
                om.append(family.om_head + chunk)
        om.append("# EOF\n")
        return Rendered("".join(text).encode(), "".join(om).encode(), samples)

    def _metric(
        self, metric: Metric, families: dict[str, _Family], old: dict[SeriesKey, str], last: _Layout | None
    ) -> int:
        body = metric.data
        kind = _kind(body)
        if kind is None:  # exponential histograms have no classic exposition
            self._layout.append(None)
            return 0
        prom, kind, text_head, om_head = self._head(
            metric.name, metric.unit or "", metric.description or "", kind
        )
        family = families.get(prom)
        first = family is None
        if family is None:
            family = families[prom] = _Family(prom, kind, text_head, om_head, [], set())
        elif family.kind != kind:
            self._layout.append(None)
            return 0  # two instruments translating to one name: the first one wins
        lines, seen = family.lines, family.seen
        samples = 0
        if kind == "histogram":
            self._layout.append(None)
            for hpoint in body.data_points:
                if isinstance(hpoint, HistogramDataPoint):
                    samples += self._histogram(prom, hpoint, lines, seen)
            return samples
        points = [p for p in body.data_points if isinstance(p, NumberDataPoint)]
        idents: list[tuple[tuple[str, object], ...]] = [
            tuple(p.attributes.items()) if p.attributes else () for p in points
        ]
        if last is not None and last.prom == prom and last.idents == idents:
            entry = last
        else:
            entry = self._layout_of(prom, points, idents, old)
        self._layout.append(entry)
        if first and entry.distinct:  # nothing of this family seen yet: no duplicate possible
            lines.extend(
                [f"{prefix}{number(p.value)}\n" for prefix, p in zip(entry.prefixes, points, strict=True)]
            )
            seen.update(entry.prefixes)
            return len(points)
        for prefix, point in zip(entry.prefixes, points, strict=True):
            if prefix in seen:
                continue  # identical once empty values are dropped: keep the first
            seen.add(prefix)
            lines.append(prefix + number(point.value) + "\n")
            samples += 1
        return samples

    def _layout_of(
        self,
        prom: str,
        points: list[NumberDataPoint],
        idents: list[tuple[tuple[str, object], ...]],
        old: dict[SeriesKey, str],
    ) -> _Layout:
        """Return the prefixes of a metric whose series changed (those of known series are kept)."""
        new = self._prefixes
        prefixes: list[str] = []
        for point in points:
            key = (prom, _hashable(point.attributes or {}))
            prefix = old.get(key) or new.get(key)
            if prefix is None:
                pairs = label_pairs(key[1])
                prefix = f"{prom}{{{_labels(pairs)}}} " if pairs else f"{prom} "
            new[key] = prefix
            prefixes.append(prefix)
        return _Layout(prom, idents, prefixes, len(set(prefixes)) == len(prefixes))

    def _histogram(self, prom: str, point: HistogramDataPoint, lines: list[str], seen: set[str]) -> int:
        pairs = label_pairs((point.attributes or {}).items())
        inner = _labels(pairs)
        if inner in seen:
            return 0
        seen.add(inner)
        sep = "," if inner else ""
        cumulative = 0
        bounds = [*(number(float(b)) for b in point.explicit_bounds), "+Inf"]
        for bound, count in zip(bounds, point.bucket_counts, strict=False):
            cumulative += count
            lines.append(f'{prom}_bucket{{{inner}{sep}le="{bound}"}} {cumulative}\n')
        tail = f"{{{inner}}}" if inner else ""
        lines.append(f"{prom}_count{tail} {point.count}\n")
        lines.append(f"{prom}_sum{tail} {number(float(point.sum))}\n")
        return len(bounds) + 2
