"""Alerting and recording rules from the configured thresholds, as a Prometheus rule file.

Each threshold level becomes one alerting rule on the metric's Prometheus name (see `_names`), with
the same level, comparison and `for`. Hysteresis: a firing alert stays firing while the value is
within `hysteresis` of its level, by joining on the alert's own `ALERTS` series (what PromQL allows;
the agent's analyzer does the same with its state). Both levels fire when the critical one is
crossed (the agent reports only the higher one); route or inhibit the warning in Alertmanager.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from otel_sysops.errors import SysopsError

from ._names import prometheus_label_name, prometheus_metric_name

Instruments = Mapping[str, tuple[str, str]]  # OTel name -> (unit, kind)

GROUP = "otel-sysops"
RECORDING_GROUP = "otel-sysops-recording"
RATE = "5m"
# Labels the ALERTS series adds to the alert's own: ignored when joining on it.
_ALERT_LABELS = ("alertname", "alertstate", "severity", "rule")


class RulesError(SysopsError):
    """A rule cannot be expressed (its metric is unknown to every installed plugin)."""


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^a-zA-Z0-9]+", name) if part)


def _matcher(key: str, value: str) -> str:
    label = prometheus_label_name(key)
    if any(c in value for c in "*?["):
        # Shell-style wildcards (fnmatch) as a fully anchored PromQL regular expression.
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
        return f"{label}=~{json.dumps(regex)}"
    return f"{label}={json.dumps(value)}"


def _selector(prom: str, match: Mapping[str, str]) -> str:
    inner = ",".join(_matcher(k, v) for k, v in sorted(match.items()))
    return f"{prom}{{{inner}}}" if inner else prom


def _name_of(metric: str, instruments: Instruments) -> str:
    try:
        unit, kind = instruments[metric]
    except KeyError:
        raise RulesError(
            f"analyzers.thresholds: {metric}: no installed plugin registers this metric"
        ) from None
    return prometheus_metric_name(metric, unit, kind)


def alerting_rules(thresholds: Iterable[Any], instruments: Instruments) -> list[dict[str, Any]]:
    """Return one alerting rule per threshold level (rules are `ThresholdRule` settings)."""
    out: list[dict[str, Any]] = []
    for rule in thresholds:
        prom = _name_of(rule.metric, instruments)
        series = _selector(prom, rule.match)
        above = rule.comparison.startswith(">")
        base = _camel(rule.metric) + "".join(_camel(v) for _, v in sorted(rule.match.items()) if v.isalnum())
        for severity, level in (("warning", rule.warning), ("critical", rule.critical)):
            if level is None:
                continue
            name = f"{base}{severity.capitalize()}"
            expr = f"{series} {rule.comparison} {level:g}"
            if rule.hysteresis > 0:
                clear = level - rule.hysteresis if above else level + rule.hysteresis
                alerts = f'ALERTS{{alertname="{name}",alertstate="firing",severity="{severity}"}}'
                ignoring = ", ".join(_ALERT_LABELS)
                held = f"({series} {rule.comparison} {clear:g} and ignoring({ignoring}) {alerts})"
                expr = f"{expr} or {held}"
            side = "above" if above else "below"
            entry: dict[str, Any] = {"alert": name, "expr": expr}
            if rule.for_ > 0:
                entry["for"] = f"{rule.for_:g}s"
            entry["labels"] = {"severity": severity, "rule": rule.label}
            entry["annotations"] = {
                "summary": f"{rule.label} {side} the {severity} level {level:g} on "
                "{{ $labels.instance }}",
                "description": f"{prom} is {{{{ $value }}}} ({rule.comparison} {level:g}"
                + (f", clears past {clear:g}" if rule.hysteresis > 0 else "")
                + (f", held {rule.for_:g}s" if rule.for_ > 0 else "")
                + ").",
            }
            out.append(entry)
    return out


def recording_rules(instruments: Instruments) -> list[dict[str, Any]]:
    """Return the per-instance aggregates the dashboards' overview panels show (those whose metrics exist)."""

    def name(metric: str) -> str | None:
        return _name_of(metric, instruments) if metric in instruments else None

    out: list[dict[str, Any]] = []
    cpu = name("system.cpu.utilization")
    if cpu:
        out.append(
            {
                "record": "instance:system_cpu_busy:ratio",
                "expr": f'1 - avg by (job, instance) ({cpu}{{cpu_mode="idle"}})',
            }
        )
    memory = name("system.memory.utilization")
    if memory:
        out.append(
            {
                "record": "instance:system_memory_used:ratio",
                "expr": f'sum by (job, instance) ({memory}{{system_memory_state="used"}})',
            }
        )
    for metric, by in (
        ("system.network.io", "network_io_direction"),
        ("system.disk.io", "disk_io_direction"),
    ):
        prom = name(metric)
        if prom:
            out.append(
                {
                    "record": f"instance:{prom.removesuffix('_total')}:rate{RATE}",
                    "expr": f"sum by (job, instance, {by}) (rate({prom}[{RATE}]))",
                }
            )
    return out


def rule_groups(thresholds: Iterable[Any], instruments: Instruments, interval: float) -> dict[str, Any]:
    """Return the rule file's content: the alerting group and the recording group."""
    every = f"{max(interval, 1.0):g}s"
    return {
        "groups": [
            {"name": GROUP, "interval": every, "rules": alerting_rules(thresholds, instruments)},
            {"name": RECORDING_GROUP, "interval": every, "rules": recording_rules(instruments)},
        ]
    }


def _scalar(value: Any) -> str:
    # JSON strings are valid YAML double-quoted scalars.
    return json.dumps(value) if isinstance(value, str) else str(value)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{key}:")
                _emit(item, indent + 1, out)
            else:
                out.append(f"{pad}{key}: {_scalar(item) if item != [] else '[]'}")
    else:
        for item in value:
            lines: list[str] = []
            _emit(item, indent + 1, lines)
            first = lines[0].lstrip()
            out.append(f"{pad}- {first}")
            out.extend(lines[1:])


def render_rules(groups: Mapping[str, Any], header: str = "") -> str:
    """Return the rule file as YAML."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(dict(groups), 0, out)
    return "\n".join(out) + "\n"
