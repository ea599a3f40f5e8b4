"""Prometheus rules equivalent to the agent's thresholds, for users who alert server-side."""

from ._build import RulesError, alerting_rules, recording_rules, render_rules, rule_groups
from ._names import prometheus_label_name, prometheus_metric_name

__all__ = [
    "RulesError",
    "alerting_rules",
    "prometheus_label_name",
    "prometheus_metric_name",
    "recording_rules",
    "render_rules",
    "rule_groups",
]
