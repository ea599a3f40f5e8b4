"""The ensemble score on host-like series: what must score high, what must stay quiet, bad input.

Every scenario series is built once and all of them are stepped together in one batch (series of
one batch do not influence each other, tested below), at one sample a minute: the file runs in
seconds, not in one streaming pass per series.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from analyzers.ensemble import EnsembleParams, EnsembleState, ensemble_step

INTERVAL = 60.0
DAY = 1440  # rows of a day at one sample a minute
PARAMS = EnsembleParams().scaled(INTERVAL)
SEASONAL = EnsembleParams(seasonal=True).scaled(INTERVAL)
QUIET = 0.3


def _step_all(columns: list[np.ndarray], params: EnsembleParams) -> list[np.ndarray]:
    """Score many series in one batch row by row (the streaming path), numpy warnings as errors."""
    length = max(c.size for c in columns)
    values = np.full((length, len(columns)), np.nan)
    for j, c in enumerate(columns):
        values[: c.size, j] = c
    hours = ((np.arange(length) * INTERVAL) // 3600 % 24).astype(np.int64)
    state = EnsembleState.empty(len(columns), params)
    out = np.zeros_like(values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(length):
            out[i] = ensemble_step(params, state, values[i], np.full(len(columns), hours[i]))
    return [out[: c.size, j] for j, c in enumerate(columns)]


def _daily() -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(3 * DAY)
    return 0.4 + 0.25 * np.sin(2 * np.pi * t / DAY) + rng.normal(0, 0.03, t.size)


def _daily_job() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(4 * DAY)
    # A backup at 02:00 every night pushes the disk busy to 0.9 for 20 min.
    job = ((t % DAY) >= 120) & ((t % DAY) < 140)
    return 0.2 + rng.normal(0, 0.02, t.size) + np.where(job, 0.7, 0.0)


def _stuck() -> np.ndarray:
    x = _daily()
    x[2 * DAY :] = x[2 * DAY]
    return x


def _drop_to_zero() -> np.ndarray:
    x = 100 * (_daily() + 0.5)
    x[2 * DAY :] = 0.0
    return x


def _shift() -> np.ndarray:
    x = _daily()
    x[2 * DAY :] += 0.8
    return x


def _noise() -> np.ndarray:
    rng = np.random.default_rng(11)
    return 1.0 + 0.05 * rng.standard_t(3, 2 * DAY)


def _spiked() -> np.ndarray:
    x = _noise()
    x[DAY + 500] = x.max() * 3
    return x


def _counter_reset() -> np.ndarray:
    steps = np.random.default_rng(12).poisson(20, 2 * DAY).astype(np.float64)
    counter = np.cumsum(steps)
    counter[DAY:] -= counter[DAY - 1]  # the process restarted: the counter starts again from 0
    return counter


def _counter_stalled() -> np.ndarray:
    steps = np.random.default_rng(12).poisson(20, 2 * DAY).astype(np.float64)
    stalled = np.cumsum(steps)
    stalled[DAY:] = stalled[DAY]
    return stalled


def _rarely_changing() -> np.ndarray:
    # A process count that moves between a few values a few times a day: long runs of one value
    # are its normal.
    rng = np.random.default_rng(13)
    levels = np.array([39.0, 40.0, 41.0])
    changes = np.flatnonzero(rng.random(2 * DAY) < 0.006)
    x = np.empty(2 * DAY)
    start = 0
    for n, at in enumerate([*changes, 2 * DAY]):
        x[start:at] = levels[n % 3]
        start = at
    return x


def _leak() -> np.ndarray:
    # Memory with a daily rhythm, then from day 2 a leak of 2 % of the range per hour: no single
    # sample is unusual, but a run of horizon records is.
    x = _daily()
    x[2 * DAY :] += np.arange(x.size - 2 * DAY) * (0.5 * 0.02 / 60)
    return x


def _flat_blip() -> np.ndarray:
    # Swap-in pages: zero almost always, a few small blips a day, then one more blip on day 3.
    rng = np.random.default_rng(21)
    x = np.zeros(3 * DAY)
    x[rng.choice(2 * DAY, 6, replace=False)] = rng.uniform(0.5, 1.0, 6)
    x[2 * DAY + 700] = 0.4
    return x


def _prefix_spike() -> np.ndarray:
    x = _daily()[: DAY // 2].copy()
    x[500] = 5.0
    return x


def _prefix_cut(c: int) -> Callable[[], np.ndarray]:
    def cut() -> np.ndarray:
        return _prefix_spike()[:c]

    return cut


CUTS = (100, 499, 501, 650)
SCENARIOS: dict[str, Callable[[], np.ndarray]] = {
    "daily": _daily,
    "daily_job": _daily_job,
    "stuck": _stuck,
    "drop_to_zero": _drop_to_zero,
    "shift": _shift,
    "noise": _noise,
    "spiked": _spiked,
    "counter_reset": _counter_reset,
    "counter_stalled": _counter_stalled,
    "rarely_changing": _rarely_changing,
    "leak": _leak,
    "flat_blip": _flat_blip,
    "prefix": _prefix_spike,
    **{f"prefix_{c}": _prefix_cut(c) for c in CUTS},
}


@pytest.fixture(scope="module")
def scored() -> dict[str, np.ndarray]:
    names = list(SCENARIOS)
    plain = _step_all([SCENARIOS[n]() for n in names], PARAMS)
    out = dict(zip(names, plain, strict=True))
    out["seasonal_daily"] = _step_all([_daily()], SEASONAL)[0]
    return out


def test_a_daily_cycle_does_not_alert(scored: dict[str, np.ndarray]) -> None:
    assert scored["daily"][DAY:].max() < QUIET


def test_a_recurring_daily_job_does_not_alert_after_its_first_run(scored: dict[str, np.ndarray]) -> None:
    # Its first run falls in warm-up; every later run is inside what this time of day did
    # the day before, so no member fires on it (the z member included).
    assert scored["daily_job"][DAY:].max() < QUIET


def test_a_stuck_sensor_scores(scored: dict[str, np.ndarray]) -> None:
    assert scored["stuck"][2 * DAY :].max() >= 0.5


def test_traffic_dropping_to_zero_scores_at_once(scored: dict[str, np.ndarray]) -> None:
    s = scored["drop_to_zero"]
    # The strongest signal of the series, at the very row it happens.
    assert s[2 * DAY] > 0.6
    assert s[2 * DAY] == s[DAY : 2 * DAY + 50].max()


def test_a_level_shift_fires_once_then_rebaselines(scored: dict[str, np.ndarray]) -> None:
    s = scored["shift"]
    assert s[2 * DAY : 2 * DAY + 10].max() > 0.9
    # After the shift the new level is the normal: nothing high a few hours later.
    assert s[2 * DAY + 360 :].max() < QUIET


def test_a_single_spike_scores_high_and_heavy_tailed_noise_stays_lower(scored: dict[str, np.ndarray]) -> None:
    s_noise, s_spike = scored["noise"], scored["spiked"]
    assert s_spike[DAY + 500] > 0.9
    assert s_spike[DAY + 500] > s_noise[DAY:].max()


def test_a_near_flat_series_that_blips_as_before_stays_quiet(scored: dict[str, np.ndarray]) -> None:
    assert scored["flat_blip"][2 * DAY :].max() < QUIET


def test_seasonal_mode_runs_and_stays_in_range(scored: dict[str, np.ndarray]) -> None:
    s = scored["seasonal_daily"]
    assert s.min() >= 0
    assert s.max() <= 1


def test_a_counter_reset_does_not_score_but_a_stalled_counter_does(scored: dict[str, np.ndarray]) -> None:
    assert scored["counter_reset"].max() < QUIET
    assert scored["counter_stalled"][DAY:].max() >= 0.5


def test_a_rarely_changing_series_is_not_stuck(scored: dict[str, np.ndarray]) -> None:
    assert scored["rarely_changing"][DAY:].max() < QUIET


def test_a_slow_leak_scores_once_it_has_risen_for_a_few_hours(scored: dict[str, np.ndarray]) -> None:
    s, plain = scored["leak"], scored["daily"]
    assert s[2 * DAY :].max() >= 0.5
    assert plain[2 * DAY :].max() < QUIET
    # It is found within the day the leak starts.
    assert np.argmax(s[2 * DAY :] >= 0.5) < DAY


def test_scores_are_streaming_prefix_invariant(scored: dict[str, np.ndarray]) -> None:
    full = scored["prefix"]
    for cut in CUTS:
        assert np.array_equal(scored[f"prefix_{cut}"], full[:cut])


def test_scores_are_invariant_to_float32_rounding_of_the_input() -> None:
    # The same data read as float32 or as 6-decimal text: rounding is not a break.
    # A near-constant series whose only moves are below the 6th decimal: rounding erases them.
    still = 0.123456 + np.random.default_rng(31).normal(0, 1e-8, 2 * DAY)
    columns = [_daily()[: 2 * DAY], _spiked(), _flat_blip()[: 2 * DAY], _daily_job()[: 2 * DAY], still]
    variants = [*columns, *(c.astype(np.float32).astype(np.float64) for c in columns)]
    variants += [np.round(c, 6) for c in columns]
    scored = _step_all(variants, PARAMS)
    n = len(columns)
    exact, rounded, text = scored[:n], scored[n : 2 * n], scored[2 * n :]
    for a, b, c in zip(exact, rounded, text, strict=True):
        assert np.max(np.abs(a - b)) < 1e-3
        assert np.max(np.abs(a - c)) < 1e-3


def test_series_in_one_batch_do_not_influence_each_other() -> None:
    daily = _daily()
    a = daily[:1000]
    b = np.where(np.arange(1000) % 7 == 0, np.nan, 10 * daily[:1000][::-1])
    state = EnsembleState.empty(2, PARAMS)
    together = np.array([ensemble_step(PARAMS, state, np.array([a[i], b[i]])) for i in range(1000)])
    single = EnsembleState.empty(1, PARAMS)
    alone = np.array([ensemble_step(PARAMS, single, a[i : i + 1])[0] for i in range(1000)])
    assert np.array_equal(together[:, 0], alone)


def test_take_keeps_state_of_surviving_series_and_resets_new_ones() -> None:
    daily = _daily()
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
