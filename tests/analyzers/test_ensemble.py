"""The ensemble score on host-like series: what must score high, what must stay quiet, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analyzers.ensemble import EnsembleParams, EnsembleState, ensemble_step

DAY = 8640  # rows of a day at 10 s
PARAMS = EnsembleParams().scaled(10.0)
QUIET = 0.3


def _scores(x: np.ndarray, params: EnsembleParams = PARAMS) -> np.ndarray:
    """Score one series row by row (the streaming path), with numpy warnings as errors."""
    state = EnsembleState.empty(1, params)
    hours = ((np.arange(x.size) * 10) // 3600 % 24).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return np.array(
            [ensemble_step(params, state, x[i : i + 1], hours[i : i + 1])[0] for i in range(x.size)]
        )


@pytest.fixture(scope="module")
def daily() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(3 * DAY)
    return 0.4 + 0.25 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.03, t.size)


def test_a_daily_cycle_does_not_alert(daily: np.ndarray) -> None:
    s = _scores(daily)
    assert s[DAY:].max() < QUIET


def test_a_recurring_daily_job_does_not_alert_after_its_first_run() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(4 * DAY)
    # A backup at 02:00 every night pushes the disk busy to 0.9 for 20 min.
    job = ((t % DAY) >= 720) & ((t % DAY) < 840)
    x = 0.2 + rng.normal(0, 0.02, t.size) + np.where(job, 0.7, 0.0)
    s = _scores(x)
    first_run = s[720:900].max()
    later = s[DAY:].max()
    assert first_run > later
    assert later < QUIET


def test_a_stuck_sensor_scores(daily: np.ndarray) -> None:
    x = daily.copy()
    x[2 * DAY :] = x[2 * DAY]
    s = _scores(x)
    assert s[2 * DAY :].max() >= 0.5


def test_traffic_dropping_to_zero_scores_at_once(daily: np.ndarray) -> None:
    x = 100 * (daily + 0.5)
    x[2 * DAY :] = 0.0
    s = _scores(x)
    # The strongest signal of the series, at the very row it happens.
    assert s[2 * DAY] > 0.6
    assert s[2 * DAY] == s[DAY : 2 * DAY + 300].max()


def test_a_level_shift_fires_once_then_rebaselines(daily: np.ndarray) -> None:
    x = daily.copy()
    x[2 * DAY :] += 0.8
    s = _scores(x)
    assert s[2 * DAY : 2 * DAY + 10].max() > 0.9
    # After the shift the new level is the normal: nothing high an hour later.
    assert s[2 * DAY + 360 :].max() < QUIET


def test_a_single_spike_scores_high_and_heavy_tailed_noise_stays_lower() -> None:
    rng = np.random.default_rng(11)
    noise = 1.0 + 0.05 * rng.standard_t(3, 2 * DAY)
    spiked = noise.copy()
    spiked[DAY + 500] = noise.max() * 3
    s_noise, s_spike = _scores(noise), _scores(spiked)
    assert s_spike[DAY + 500] > 0.9
    assert s_spike[DAY + 500] > s_noise[DAY:].max()


def test_scores_are_streaming_prefix_invariant(daily: np.ndarray) -> None:
    x = daily[: DAY // 2].copy()
    x[3000] = 5.0
    full = _scores(x)
    for cut in (300, 2999, 3001, 4000):
        assert np.array_equal(_scores(x[:cut]), full[:cut])


def test_series_in_one_batch_do_not_influence_each_other(daily: np.ndarray) -> None:
    a = daily[:3000]
    b = np.where(np.arange(3000) % 7 == 0, np.nan, 10 * daily[:3000][::-1])
    state = EnsembleState.empty(2, PARAMS)
    together = np.array([ensemble_step(PARAMS, state, np.array([a[i], b[i]])) for i in range(3000)])
    assert np.array_equal(together[:, 0], _scores(a, PARAMS) * 0 + together[:, 0])
    single = EnsembleState.empty(1, PARAMS)
    alone = np.array([ensemble_step(PARAMS, single, a[i : i + 1])[0] for i in range(3000)])
    assert np.array_equal(together[:, 0], alone)


def test_take_keeps_state_of_surviving_series_and_resets_new_ones(daily: np.ndarray) -> None:
    state = EnsembleState.empty(2, PARAMS)
    for v in daily[:500]:
        ensemble_step(PARAMS, state, np.array([v, v + 1]))
    moved = state.take(np.array([1, 0, 0]), np.array([False, False, True]))
    assert moved.seen.tolist() == [500, 500, 0]
    assert np.isnan(moved.level.bmin[2]).all()


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]),
)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 400)), elements=finite_or_not))
def test_any_input_gives_scores_in_range_without_warnings(values: np.ndarray) -> None:
    params = EnsembleParams(block=4, blocks=4, quiet=8, warmup=2, mean_rows=3, stuck_rows=5)
    state = EnsembleState.empty(values.shape[0], params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for col in range(values.shape[1]):
            s = ensemble_step(params, state, values[:, col], np.zeros(values.shape[0], dtype=np.int64))
            assert np.all((s >= 0) & (s <= 1))
            assert np.all(s[~np.isfinite(values[:, col])] == 0)


@settings(max_examples=30, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(10, 300))
def test_a_constant_series_never_scores(value: float, n: int) -> None:
    params = EnsembleParams(block=4, blocks=4, quiet=8, warmup=2, mean_rows=3, stuck_rows=5)
    state = EnsembleState.empty(1, params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = [ensemble_step(params, state, np.array([value]))[0] for _ in range(n)]
    assert max(scores) == 0.0


def test_seasonal_mode_runs_and_stays_in_range(daily: np.ndarray) -> None:
    params = EnsembleParams(seasonal=True).scaled(10.0)
    s = _scores(daily, params)
    assert s.min() >= 0
    assert s.max() <= 1


def test_a_counter_reset_does_not_score_but_a_stalled_counter_does() -> None:
    rng = np.random.default_rng(12)
    steps = rng.poisson(20, 2 * DAY).astype(np.float64)
    counter = np.cumsum(steps)
    counter[DAY:] -= counter[DAY - 1]  # the process restarted: the counter starts again from 0
    s = _scores(counter)
    assert s.max() < QUIET
    stalled = np.cumsum(steps)
    stalled[DAY:] = stalled[DAY]
    s = _scores(stalled)
    assert s[DAY:].max() >= 0.5


def test_a_rarely_changing_series_is_not_stuck() -> None:
    # A process count that moves between a few values a few times a day: long runs of one value
    # are its normal.
    rng = np.random.default_rng(13)
    levels = np.array([39.0, 40.0, 41.0])
    changes = np.flatnonzero(rng.random(2 * DAY) < 0.001)
    x = np.empty(2 * DAY)
    start = 0
    for n, at in enumerate([*changes, 2 * DAY]):
        x[start:at] = levels[n % 3]
        start = at
    s = _scores(x)
    assert s[DAY:].max() < QUIET


def test_a_slow_leak_scores_once_it_has_risen_for_a_few_hours(daily: np.ndarray) -> None:
    # Memory with a daily rhythm, then from day 2 a leak of 2 % of the range per hour: no single
    # sample is unusual, but a run of horizon records is.
    x = daily.copy()
    leak = np.arange(x.size - 2 * DAY) * (0.5 * 0.02 / 360)
    x[2 * DAY :] += leak
    s = _scores(x)
    plain = _scores(daily)
    assert s[2 * DAY :].max() >= 0.5
    assert plain[2 * DAY :].max() < QUIET
    # It is found within the day the leak starts.
    assert np.argmax(s[2 * DAY :] >= 0.5) < DAY
