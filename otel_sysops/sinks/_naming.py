"""OpenTelemetry -> Prometheus names, by the rules of the Go translator.

Prometheus' OTLP receiver and the Collector's `prometheusremotewrite` exporter name metrics this
way, so the names on our `/metrics` are the names a dashboard sees whichever path the data took:

- the metric name is split into its alphanumeric words, joined again with `_`;
- the unit is appended as a word (`By` -> `bytes`, `s` -> `seconds`, `By/s` ->
  `bytes_per_second`) unless it is empty, an `{annotation}`, `1`, or a word already in the name;
- a monotonic sum ends in `_total` (moved to the end if the name already has it);
- a gauge of unit `1` ends in `_ratio` (moved likewise); sums of unit `1` do not;
- a name that would start with a digit gets a leading `_`.

Label names: every character outside `[a-zA-Z0-9_]` becomes `_`; a name starting with a digit
gets `key_`, one starting with a single `_` gets `key`. Attributes whose names collide after that
are joined with `;` in the order of their original names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

Kind = Literal["gauge", "counter", "updowncounter", "histogram"]

_WORDS = re.compile(r"[A-Za-z0-9]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_]")

_UNITS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tebibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def _clean(text: str) -> str:
    return "_".join(_WORDS.findall(text))


def metric_name(name: str, unit: str, kind: Kind) -> str:
    """Return the Prometheus name of an OTel metric (`kind` as its OTLP data type says)."""
    words = _WORDS.findall(name)
    main, _, per = unit.partition("/")
    main, per = main.strip(), per.strip()
    if main and "{" not in main and "}" not in main:
        word = _clean(_UNITS.get(main, main))
        if word and word not in words:
            words.append(word)
    if per and "{" not in per and "}" not in per:
        word = _clean(_PER_UNITS.get(per, per))
        if word and word not in words:
            words += ["per", word]
    if kind == "counter":
        words = [w for w in words if w != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        words = [w for w in words if w != "ratio"] + ["ratio"]
    out = "_".join(words)
    if out and out[0].isdigit():
        out = "_" + out
    return out


def label_name(name: str) -> str:
    """Return the Prometheus label name of an attribute name."""
    if not name:
        return name
    out = _NOT_LABEL.sub("_", name)
    if out[0].isdigit():
        return "key_" + out
    if out.startswith("_") and not out.startswith("__"):
        return "key" + out
    return out


def label_pairs(attributes: Iterable[tuple[str, object]]) -> list[tuple[str, str]]:
    """Return (label, value) pairs of an attribute set: sanitized, merged on collision, sorted.

    Attributes with an empty value are left out: Prometheus treats an empty label as absent.
    """
    merged: dict[str, list[tuple[str, str]]] = {}
    for key, value in attributes:
        text = attribute_value(value)
        if text == "":
            continue
        merged.setdefault(label_name(key), []).append((key, text))
    out: list[tuple[str, str]] = []
    for label, items in merged.items():
        items.sort()
        out.append((label, ";".join(v for _, v in items)))
    out.sort()
    return out


def attribute_value(value: object) -> str:
    """Return an attribute value as a label value (booleans lower-case, sequences as JSON-like lists)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json_item(v) for v in value) + "]"
    return str(value)


def _json_item(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return attribute_value(value)
