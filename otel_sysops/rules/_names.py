"""OpenTelemetry metric -> Prometheus name, as the Go translator names it (prometheus/otlptranslator).

That translator is what Prometheus' OTLP receiver and the Collector's Prometheus exporters use, with
suffixes on: the name split into tokens on every character outside `[a-zA-Z0-9:]` (so runs of
separators become one `_`), the unit translated and appended unless the name already holds it
(`By` -> `bytes`, `s` -> `seconds`, `a/b` -> `a_per_b`; units in braces add nothing), `_total` last
for monotonic sums (counters), `_ratio` for gauges of unit `1`, and `_` in front of a leading digit.
"""

from __future__ import annotations

import re

# The translator's main-unit table (UCUM case-sensitive codes -> Prometheus words).
UNITS = {
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
    "TiBy": "tibibytes",
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
# The "per" units (after the slash).
PER_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}

_SEPARATOR = re.compile(r"[^a-zA-Z0-9:]+")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _clean(unit: str) -> str:
    return _SEPARATOR.sub("_", unit).strip("_")


def prometheus_metric_name(name: str, unit: str, kind: str) -> str:
    """Return the Prometheus name of an instrument: its OTel name, unit and kind.

    `kind` is the instrument kind as the catalog records it: "counter" (a monotonic sum),
    "updowncounter", "gauge" or "histogram" ("churning " in front is ignored).
    """
    kind = kind.removeprefix("churning ")
    tokens = [t for t in _SEPARATOR.split(name) if t]
    main, _, per = unit.partition("/")
    main, per = main.strip(), per.strip()
    main_word = ""
    if main and "{" not in main and "}" not in main:
        main_word = _clean(UNITS.get(main, main))
        if main_word in tokens:
            main_word = ""
    per_word = ""
    if per and "{" not in per and "}" not in per:
        per_word = _clean(PER_UNITS.get(per, per))
        if per_word:
            per_word = "per_" + per_word
            if per_word in tokens:
                per_word = ""
    if per_word:
        main_word = main_word.removesuffix("_")
    tokens += [w for w in (main_word, per_word) if w]
    if kind == "counter":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    out = "_".join(tokens)
    return f"_{out}" if out[:1].isdigit() else out


def prometheus_label_name(key: str) -> str:
    """Return an attribute key as a Prometheus label name (invalid characters become `_`)."""
    label = _LABEL_INVALID.sub("_", key)
    if label[:1].isdigit():
        return "key_" + label
    return label
