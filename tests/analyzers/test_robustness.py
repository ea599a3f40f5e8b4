"""Any input, including NaN, inf, huge and constant values, gives sane output and no numpy warning."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analyzers.ewma import EwmaParams, EwmaState, ewma_step
from analyzers.threshold import RuleArrays, ThresholdParams, ThresholdState, threshold_step
from analyzers.zscore import ZScoreParams, robust_z

anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e308, -1e308, 5e-324, 0.85, 0.95]),
)
matrices = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(0, 60)), elements=anything)


@settings(max_examples=80, deadline=None)
@given(matrices)
def test_threshold_never_fires_on_a_gap(values: np.ndarray) -> None:
    n = values.shape[0]
    rules = RuleArrays.of([ThresholdParams(0.8, 0.9, ">", 0.05, 20.0)] * n)
    state = ThresholdState.empty(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(values.shape[1]):
            before = state.level.copy()
            level = threshold_step(rules, state, values[:, t], 10.0 * t)
            gap = ~np.isfinite(values[:, t])
            assert np.array_equal(level[gap], before[gap])
            assert set(level.tolist()) <= {0, 1, 2}


@settings(max_examples=80, deadline=None)
@given(matrices)
def test_ewma_deviation_is_finite(values: np.ndarray) -> None:
    params = EwmaParams(warmup=3)
    state = EwmaState.empty(values.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in range(values.shape[1]):
            dev, _, _ = ewma_step(params, state, values[:, t])
            finite = np.isfinite(values[:, t])
            assert np.all(dev[~finite] == 0)
            assert not np.isnan(dev).any()


@settings(max_examples=80, deadline=None)
@given(matrices)
def test_robust_z_is_finite(values: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, start, _ = robust_z(values, np.zeros(values.shape[0], dtype=np.int64), ZScoreParams(min_points=3))
    assert not np.isnan(z).any()
    assert np.all(start >= 0)


@settings(max_examples=40, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(2, 80))
def test_a_constant_series_never_deviates(value: float, n: int) -> None:
    x = np.full((2, n), value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, _, _ = robust_z(x, np.zeros(2, dtype=np.int64), ZScoreParams(min_points=3))
        state = EwmaState.empty(2)
        devs = [ewma_step(EwmaParams(warmup=3), state, x[:, t])[0] for t in range(n)]
    assert np.all(z == 0)
    assert all(np.all(d == 0) for d in devs)
