"""Settings of the analyzers (`[analyzers]`, `SYSOPS_ANALYZERS__*`).

The built-in default rules live with the analyzers (`analyzers/defaults.py`); the rules here are
added to them, and one with the same metric and matcher as a default replaces it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from ._base import Section

Comparison = Literal[">", ">=", "<", "<="]
Display = Literal["percent", "seconds", "celsius", "bytes", "number"]


class _Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    metric: str = Field(min_length=1)
    # Attribute name -> value (shell-style wildcards allowed) a series must carry for the rule.
    match: dict[str, str] = {}
    # false switches off a default rule with the same metric and matcher.
    enabled: bool = True

    @property
    def label(self) -> str:
        """Name the rule in messages: the metric and its matcher."""
        if not self.match:
            return self.metric
        return f"{self.metric}{{{', '.join(f'{k}={v}' for k, v in sorted(self.match.items()))}}}"


class ThresholdRule(_Rule):
    """A static threshold: `[[analyzers.thresholds]] metric = "sysops.cpu.busy" warning = 0.8 ...`."""

    warning: float | None = None
    critical: float | None = None
    comparison: Comparison = ">"
    # A firing level clears only once the value is past level minus this (plus it for "<").
    hysteresis: float = Field(0.0, ge=0)
    # Seconds the condition must hold before it fires (TOML key `for`).
    for_: float = Field(0.0, ge=0, alias="for")
    # How values are shown in messages; None: as the default rule of the metric shows them.
    display: Display | None = None

    @model_validator(mode="after")
    def _levels_in_order(self) -> ThresholdRule:
        if self.enabled and self.warning is None and self.critical is None:
            raise ValueError(f"threshold rule {self.label}: needs warning, critical or both")
        if self.warning is not None and self.critical is not None:
            above = self.comparison.startswith(">")
            if (above and self.warning > self.critical) or (not above and self.warning < self.critical):
                side = "above" if above else "below"
                raise ValueError(
                    f"threshold rule {self.label}: warning {self.warning} must not be {side} "
                    f"critical {self.critical} with comparison {self.comparison!r}"
                )
        return self


class TrendRule(_Rule):
    """A depletable resource forecast: a utilization (or any series) rising toward `limit`."""

    limit: float = 1.0


class LeakRule(_Rule):
    """A per-process series whose sustained growth is a leak (e.g. process.memory.usage)."""

    # Smallest growth over the fitted span that counts (in the metric's unit), so tiny drifts do not.
    min_increase: float = Field(0.0, ge=0)
    display: Display = "number"


class AnomalySettings(Section):
    """The ensemble anomaly score of every watched series; `sysops.anomaly.score` per metric family."""

    enabled: bool = True
    # Metric names (shell-style wildcards) scored, and those never scored.
    metrics: list[str] = ["*"]
    exclude: list[str] = ["sysops.anomaly.*", "sysops.forecast.*", "otel_sysops.*"]
    # A score at or above this fires an INFO finding; it clears once the score falls below half of it.
    alert_score: float = Field(0.9, gt=0, le=1.0)
    # Subtract an hour-of-day baseline first (for series with a strong daily rhythm).
    seasonal: bool = False
    # Metric names (wildcards) whose per-series scores are exported as `sysops.anomaly.series.score`
    # (by default only the per-family maximum, the anomalous count and the top series are).
    export_series: list[str] = []


class CorrelationSettings(Section):
    """The host incident score `sysops.anomaly.host.score` and one finding per incident."""

    enabled: bool = True
    # A host score at or above this opens an incident finding naming the top series.
    alert_score: float = Field(0.6, gt=0, le=1.0)
    # Seconds the host score must stay below half of alert_score before the incident clears.
    clear_after: float = Field(600.0, ge=0)


class TrendSettings(Section):
    """Time-to-exhaustion forecasts by linear regression over the raw window."""

    enabled: bool = True
    warning: float = Field(86400.0, gt=0, description="seconds to exhaustion that warn")
    critical: float = Field(3600.0, gt=0, description="seconds to exhaustion that are critical")
    min_r2: float = Field(0.8, ge=0, le=1)
    # Seconds of data the fit must span before it forecasts anything.
    min_span: float = Field(900.0, gt=0)
    # Seconds between refits: a forecast over an hour of data moves little in one tick.
    every: float = Field(60.0, ge=0)
    rules: list[TrendRule] = []

    @model_validator(mode="after")
    def _order(self) -> TrendSettings:
        if self.critical > self.warning:
            raise ValueError(f"critical ({self.critical} s) must not exceed warning ({self.warning} s)")
        return self


class LeakSettings(Section):
    """Sustained growth of a process's memory or descriptors."""

    enabled: bool = True
    min_duration: float = Field(1800.0, gt=0, description="seconds the growth must span")
    min_r2: float = Field(0.9, ge=0, le=1)
    # Growth over the span relative to its start that counts as a leak (0.1 = 10 %).
    min_growth: float = Field(0.1, ge=0)
    # Seconds between refits (growth over 30 minutes moves little in one tick).
    every: float = Field(60.0, ge=0)
    rules: list[LeakRule] = []


class BaselineSettings(Section):
    """Robust z-score and EWMA band findings for the metrics listed (none by default)."""

    metrics: list[str] = []
    threshold: float = Field(6.0, gt=0)
    # Consecutive out-of-band points that make a level shift (the baseline restarts) or, for
    # EWMA, that must be out before a finding fires.
    points: int = Field(12, ge=1)


class AnalyzersSettings(Section):
    """Which analyzers run."""

    enabled: bool = True
    # Entry-point names never to run.
    disabled: list[str] = []
    # Use the built-in threshold rules (docs/analyzers.md); `thresholds` adds to or replaces them.
    default_thresholds: bool = True
    thresholds: list[ThresholdRule] = []
    anomaly: AnomalySettings = AnomalySettings()
    correlation: CorrelationSettings = CorrelationSettings()
    trend: TrendSettings = TrendSettings()
    leak: LeakSettings = LeakSettings()
    zscore: BaselineSettings = BaselineSettings()
    ewma: BaselineSettings = BaselineSettings()
