"""Default NVIDIA GPU rules over the ring store: temperature, memory, uncorrectable ECC errors,
retired pages and remapped rows, thermal or power throttling, a GPU lost from the bus.

Each rule turns one metric's series matrix into a severity per series with a pure numpy function;
the analyzer reports a finding for every firing series each tick and one cleared finding when a
series stops firing. A series with no point this tick (NaN) keeps its previous state; one the store no longer
holds (a GPU taken out, a series evicted) is cleared, as by the other analyzers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from opentelemetry.semconv._incubating.attributes.hw_attributes import (
    HW_ID,
    HW_NAME,
    HW_STATE,
    HW_TYPE,
    HwStateValues,
    HwTypeValues,
)
from opentelemetry.semconv._incubating.metrics import hw_metrics as hw
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE

from otel_sysops.findings import Finding, Severity
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.store import SeriesMatrix

F64 = NDArray[np.float64]
Levels = NDArray[np.int8]

# Severity codes in the level arrays: -1 unknown (no point this tick), 0 clear, else the severity + 1.
UNKNOWN, CLEAR = -1, 0
_SEVERITIES = {int(s) + 1: s for s in Severity}

# Metric and attribute names of instrumentation.gpu (kept literal: analyzers never import collectors).
GPU_CLOCKS_EVENT_ACTIVE = "sysops.gpu.clocks_event.active"
GPU_CLOCKS_EVENT_REASON = "sysops.gpu.clocks_event.reason"
GPU_RETIRED_PAGES = "sysops.gpu.retired_pages"
GPU_RETIRED_PAGES_PENDING = "sysops.gpu.retired_pages.pending"
GPU_REMAPPED_ROWS_PENDING = "sysops.gpu.remapped_rows.pending"
GPU_REMAPPED_ROWS_FAILURE = "sysops.gpu.remapped_rows.failure"
# Uncorrectable errors since the driver loaded (hw.errors holds the lifetime count).
GPU_ECC_VOLATILE_ERRORS = "sysops.gpu.ecc.volatile.errors"
# Clock-event reasons that mean "held down by heat or by a power limit".
THROTTLE_REASONS = frozenset(
    {"sw_thermal_slowdown", "hw_thermal_slowdown", "sw_power_cap", "hw_power_brake_slowdown", "hw_slowdown"}
)
GPU = HwTypeValues.GPU.value


@dataclass(frozen=True, slots=True)
class GpuRuleParams:
    """Thresholds of the default GPU rules (from `[gpu]` settings)."""

    temperature_warning: float = 85.0
    temperature_critical: float = 95.0
    memory_warning: float = 0.90
    memory_critical: float = 0.98
    throttle_ticks: int = 3
    temperature_memory: bool = True


def _code(severity: Severity) -> int:
    return int(severity) + 1


def threshold_levels(last: F64, warning: float, critical: float) -> Levels:
    """Return per series: critical at or above `critical`, warning at or above `warning`, else clear."""
    out = np.where(
        last >= critical, _code(Severity.CRITICAL), np.where(last >= warning, _code(Severity.WARNING), CLEAR)
    )
    return np.where(np.isnan(last), UNKNOWN, out).astype(np.int8)


def flag_levels(last: F64, severity: Severity) -> Levels:
    """Return per series: `severity` where the last value is non-zero, else clear."""
    out = np.where(last != 0, _code(severity), CLEAR)
    return np.where(np.isnan(last), UNKNOWN, out).astype(np.int8)


def increase_levels(values: F64, severity: Severity) -> Levels:
    """Return per series: `severity` where the last value exceeds the window's minimum (a counter rose)."""
    last = values[:, -1] if values.shape[1] else np.full(values.shape[0], np.nan)
    low = np.where(np.isnan(values), np.inf, values).min(axis=1, initial=np.inf)
    out = np.where(last > low, _code(severity), CLEAR)
    return np.where(np.isnan(last), UNKNOWN, out).astype(np.int8)


def sustained_levels(values: F64, ticks: int, severity: Severity) -> Levels:
    """Return per series: `severity` where each of the last `ticks` values is non-zero."""
    last = values[:, -1] if values.shape[1] else np.full(values.shape[0], np.nan)
    if values.shape[1] < ticks:
        held = np.zeros(values.shape[0], dtype=bool)
    else:
        window = values[:, -ticks:]
        held = np.all(np.nan_to_num(window, nan=0.0) != 0, axis=1)
    out = np.where(held, _code(severity), CLEAR)
    return np.where(np.isnan(last), UNKNOWN, out).astype(np.int8)


def _last(m: SeriesMatrix) -> F64:
    return m.values[:, -1] if m.values.shape[1] else np.full(m.values.shape[0], np.nan)


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    metric: str
    # Which series of the metric the rule looks at.
    keep: Callable[[Mapping[str, str]], bool]
    levels: Callable[[SeriesMatrix], Levels]
    message: Callable[[Mapping[str, str], float], str]
    threshold: Callable[[Severity], float | None] = lambda _: None


def _gpu(attrs: Mapping[str, str]) -> str:
    # A sensor names its GPU through hw.parent.
    gpu_id = attrs.get("hw.parent") or attrs.get(HW_ID, "?")
    return f"GPU {attrs.get(HW_NAME, '?').removesuffix(' temperature')} ({gpu_id})"


def _rules(p: GpuRuleParams) -> list[_Rule]:
    def is_gpu(a: Mapping[str, str]) -> bool:
        return a.get(HW_TYPE) == GPU

    rules = [
        _Rule(
            "gpu.ecc.uncorrected",
            GPU_ECC_VOLATILE_ERRORS,
            lambda a: is_gpu(a) and a.get(ERROR_TYPE) == "uncorrected",
            lambda m: flag_levels(_last(m), Severity.CRITICAL),
            lambda a, v: f"{_gpu(a)}: {v:.0f} uncorrectable ECC error(s) since the driver loaded",
        ),
        _Rule(
            "gpu.ecc.uncorrected",
            hw.HW_ERRORS,
            lambda a: is_gpu(a) and a.get(ERROR_TYPE) == "uncorrected",
            lambda m: increase_levels(m.values, Severity.CRITICAL),
            lambda a, v: f"{_gpu(a)}: lifetime uncorrectable ECC errors rose to {v:.0f}",
        ),
        _Rule(
            "gpu.retired_pages",
            GPU_RETIRED_PAGES,
            lambda a: True,
            lambda m: increase_levels(m.values, Severity.CRITICAL),
            lambda a, v: (
                f"{_gpu(a)}: memory pages retired ({a.get('sysops.gpu.retirement.cause')}), now {v:.0f}"
            ),
        ),
        _Rule(
            "gpu.retired_pages.pending",
            GPU_RETIRED_PAGES_PENDING,
            lambda a: True,
            lambda m: flag_levels(_last(m), Severity.CRITICAL),
            lambda a, v: f"{_gpu(a)}: a page retirement waits for a GPU reset",
        ),
        _Rule(
            "gpu.remapped_rows.failure",
            GPU_REMAPPED_ROWS_FAILURE,
            lambda a: True,
            lambda m: flag_levels(_last(m), Severity.CRITICAL),
            lambda a, v: f"{_gpu(a)}: a memory row remapping failed; the GPU needs service",
        ),
        _Rule(
            "gpu.remapped_rows.pending",
            GPU_REMAPPED_ROWS_PENDING,
            lambda a: True,
            lambda m: flag_levels(_last(m), Severity.WARNING),
            lambda a, v: f"{_gpu(a)}: a memory row remapping waits for a GPU reset",
        ),
        _Rule(
            "gpu.throttle",
            GPU_CLOCKS_EVENT_ACTIVE,
            lambda a: a.get(GPU_CLOCKS_EVENT_REASON) in THROTTLE_REASONS,
            lambda m: sustained_levels(m.values, p.throttle_ticks, Severity.WARNING),
            lambda a, v: (
                f"{_gpu(a)}: clocks held down by {a.get(GPU_CLOCKS_EVENT_REASON)} "
                f"for {p.throttle_ticks} tick(s)"
            ),
        ),
        _Rule(
            "gpu.lost",
            hw.HW_STATUS,
            lambda a: is_gpu(a) and a.get(HW_STATE) == HwStateValues.FAILED.value,
            lambda m: flag_levels(_last(m), Severity.EMERGENCY),
            lambda a, v: f"{_gpu(a)} at PCI {a.get('sysops.pci.bus_id', '?')} is lost: NVML cannot reach it",
        ),
    ]
    if p.temperature_memory:
        rules += [
            _Rule(
                "gpu.temperature",
                hw.HW_TEMPERATURE,
                lambda a: a.get("hw.sensor_location") == GPU and a.get("hw.parent") is not None,
                lambda m: threshold_levels(_last(m), p.temperature_warning, p.temperature_critical),
                lambda a, v: f"{_gpu(a)}: temperature {v:.0f} °C",
                lambda s: p.temperature_critical if s >= Severity.CRITICAL else p.temperature_warning,
            ),
            _Rule(
                "gpu.memory",
                hw.HW_GPU_MEMORY_UTILIZATION,
                lambda a: True,
                lambda m: threshold_levels(_last(m), p.memory_warning, p.memory_critical),
                lambda a, v: f"{_gpu(a)}: {v:.1%} of GPU memory in use",
                lambda s: p.memory_critical if s >= Severity.CRITICAL else p.memory_warning,
            ),
        ]
    return rules


class GpuRulesAnalyzer(Analyzer):
    """The GPU rules of the issue: thresholds from `[gpu]`, state kept per rule and series."""

    def __init__(self, ctx: AnalyzerContext, params: GpuRuleParams | None = None) -> None:
        super().__init__(ctx)
        cfg = ctx.settings.gpu
        self.params = params or GpuRuleParams(
            temperature_warning=cfg.temperature_warning,
            temperature_critical=cfg.temperature_critical,
            memory_warning=cfg.memory_warning,
            memory_critical=cfg.memory_critical,
            throttle_ticks=cfg.throttle_ticks,
            temperature_memory=cfg.rules_temperature_memory,
        )
        self._rules = _rules(self.params)
        # (rule, metric, attributes) -> firing severity
        self._active: dict[tuple[str, str, tuple[tuple[str, str], ...]], Severity] = {}

    def analyze(self, now: float) -> Iterable[Finding]:
        return list(self._findings(now))

    def _findings(self, now: float) -> Iterator[Finding]:
        store = self.ctx.store
        matrices: dict[str, SeriesMatrix] = {}
        for rule in self._rules:
            m = matrices.get(rule.metric)
            if m is None:
                m = matrices[rule.metric] = store.matrix(rule.metric)
            rows = [i for i, a in enumerate(m.attributes) if rule.keep(a)]
            if not rows:
                continue
            sub = SeriesMatrix(m.name, [m.attributes[i] for i in rows], m.timestamps, m.values[rows])
            levels = rule.levels(sub)
            last = _last(sub)
            for attrs, level, value in zip(sub.attributes, levels.tolist(), last.tolist(), strict=True):
                yield from self._transition(rule, attrs, level, value, now)
        yield from self._vanished(matrices, now)

    def _vanished(self, matrices: Mapping[str, SeriesMatrix], now: float) -> Iterator[Finding]:
        """Clear what fired for series the store no longer holds (a GPU gone, a series evicted)."""
        live = {(name, tuple(sorted(a.items()))) for name, m in matrices.items() for a in m.attributes}
        for key in [k for k in self._active if (k[1], k[2]) not in live]:
            del self._active[key]
            rule, metric, attrs = key
            gone = dict(attrs)
            yield Finding(rule, metric, gone, None, f"{_gpu(gone)}: series no longer reported", timestamp=now)

    def _transition(
        self, rule: _Rule, attrs: dict[str, str], level: int, value: float, now: float
    ) -> Iterator[Finding]:
        if level == UNKNOWN:
            return
        key = (rule.name, rule.metric, tuple(sorted(attrs.items())))
        if level == CLEAR:
            if self._active.pop(key, None) is not None:
                yield Finding(
                    rule.name,
                    rule.metric,
                    attrs,
                    None,
                    f"{_gpu(attrs)}: {rule.name} cleared",
                    value,
                    timestamp=now,
                )
            return
        severity = _SEVERITIES[level]
        self._active[key] = severity
        yield Finding(
            rule.name,
            rule.metric,
            attrs,
            severity,
            rule.message(attrs, value),
            value,
            rule.threshold(severity),
            timestamp=now,
        )
