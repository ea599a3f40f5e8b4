"""The anomaly score, z-score and EWMA analyzers through the real pipeline; entry points load."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import numpy as np

from analyzers.anomaly import SCORE_METRIC, SERIES_SCORE_METRIC, TOP_METRIC, AnomalyAnalyzer
from analyzers.ensemble import EnsembleState, ensemble_step
from analyzers.ewma import EwmaAnalyzer
from analyzers.zscore import ZScoreAnalyzer, ZScoreParams, robust_z
from otel_sysops.alerts import Finding, Severity
from otel_sysops.pipeline import Pipeline
from otel_sysops.settings import Settings
from otel_sysops.store import AttrKey
from tests.points import data_points, number_points

from .conftest import Rig, Series

LAT = "test.latency"


def _scores(r: Rig, name: str = SERIES_SCORE_METRIC) -> dict[str, float]:
    assert r.pipe.last_result is not None
    return {
        str((p.attributes or {}).get("host", "")): float(p.value)
        for m, p in number_points(r.pipe.last_result.data)
        if m.name == name
    }


def test_every_series_gets_a_score_and_a_spike_fires_and_clears(rig: Callable[..., Rig]) -> None:
    r = rig([LAT], analyzers={"anomaly": {"export_series": [LAT]}})
    r.add("anomaly", AnomalyAnalyzer)
    rng = np.random.default_rng(4)
    a, b = (("host", "a"),), (("host", "b"),)
    events: list[tuple[int, Finding]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(3000):
            spike = 50.0 if i == 2500 else 0.0
            values: Series = {
                a: 10 + rng.normal(0, 1) + spike,
                b: float("nan") if i % 5 == 1 else 3.0 + rng.normal(0, 0.1),
            }
            events.extend((i, f) for f in r.tick({LAT: values}))
            if i == 2501:
                # Analyzer outputs are exported with the next tick's collection.
                scores = _scores(r)
                family = _scores(r, SCORE_METRIC)
                top = _scores(r, TOP_METRIC)
    assert set(scores) == {"a", "b"}
    assert scores["a"] > 0.9 > scores["b"]
    assert set(family) == {""}
    assert family[""] == scores["a"]
    assert top["a"] == scores["a"]
    assert [(i, f.severity, f.attributes["host"]) for i, f in events] == [
        (2500, Severity.INFO, "a"),
        (2530, None, "a"),
    ]
    assert "anomaly score" in events[0][1].message


def test_own_outputs_are_not_scored(rig: Callable[..., Rig]) -> None:
    r = rig([LAT])
    r.add("anomaly", AnomalyAnalyzer)
    for _ in range(3):
        r.tick({LAT: {(("host", "a"),): 1.0}})
    analyzer = r.pipe.analyzers["anomaly"]
    assert isinstance(analyzer, AnomalyAnalyzer)
    # The anomaly analyzer keys its index by (metric, attributes); SeriesIndex declares attributes only.
    keys = cast(list[tuple[str, AttrKey]], analyzer.index.keys)
    assert [m for m, _ in keys] == [LAT]


def test_zscore_rebaselines_after_a_level_shift(rig: Callable[..., Rig]) -> None:
    r = rig([LAT], analyzers={"zscore": {"metrics": ["test.*"], "threshold": 6.0, "points": 12}})
    r.add("zscore", ZScoreAnalyzer)
    rng = np.random.default_rng(8)
    events = []
    values = list(10 + rng.normal(0, 1, 200)) + list(30 + rng.normal(0, 1, 300))
    for i, v in enumerate(values):
        events += [(i, f.severity) for f in r.tick({LAT: {(("host", "a"),): float(v)}})]
    # Fires at the shift, then the new level becomes the baseline and it clears: not days of alerts.
    assert events[0] == (200, Severity.WARNING)
    assert events[1][1] is None
    assert events[1][0] < 200 + 60
    assert len(events) == 2


def test_robust_z_on_constant_and_empty_rows_is_quiet() -> None:
    values = np.vstack([np.full(50, 3.0), np.full(50, np.nan), np.r_[np.full(49, 3.0), 3.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z, start, med = robust_z(values, np.zeros(3, dtype=np.int64), ZScoreParams())
    assert z[0] == 0
    assert z[1] == 0
    assert np.isnan(med[1])
    # MAD 0: the scale floor (0.1 % of the median) keeps z finite.
    assert np.isfinite(z[2])
    assert z[2] > 6
    assert start.tolist() == [0, 0, 0]


def test_ewma_fires_after_a_sustained_excursion_and_clears(rig: Callable[..., Rig]) -> None:
    r = rig([LAT], analyzers={"ewma": {"metrics": [LAT], "threshold": 4.0, "points": 5}})
    r.add("ewma", EwmaAnalyzer)
    rng = np.random.default_rng(9)
    values = list(10 + rng.normal(0, 1, 300)) + [25.0] * 8 + list(10 + rng.normal(0, 1, 20))
    events = []
    for i, v in enumerate(values):
        events += [(i, f.severity) for f in r.tick({LAT: {(("host", "a"),): float(v)}})]
    assert events[0] == (304, Severity.WARNING)
    assert events[1] == (308, None)


def test_analyzers_load_from_entry_points(make_settings: Callable[..., Settings]) -> None:
    pipe = Pipeline(make_settings(analyzers={"disabled": ["ewma"]}), load=False)
    try:
        pipe.load_analyzers()
        assert sorted(pipe.analyzers) == [
            "anomaly",
            "correlation",
            "gpu_rules",
            "leak",
            "threshold",
            "trend",
            "zscore",
        ]
        pipe.tick()
    finally:
        pipe.close(2.0)


def test_the_batched_step_gives_the_per_metric_scores(rig: Callable[..., Rig]) -> None:
    # Three metrics with series that come and go, stepped in one batch by the analyzer, against
    # the ensemble stepped per metric on the same values.
    metrics = ["test.a", "test.b", "test.c"]
    r = rig(metrics)
    analyzer = r.add("anomaly", AnomalyAnalyzer)
    assert isinstance(analyzer, AnomalyAnalyzer)
    params = analyzer.params
    rng = np.random.default_rng(5)
    per_metric = {m: EnsembleState.empty(2, params) for m in metrics}
    for i in range(400):
        values: dict[str, Series] = {
            m: {(("k", str(j)),): float(rng.normal(j + 1, 0.1 * (j + 1))) for j in range(2)} for m in metrics
        }
        if i == 300:
            values["test.b"][(("k", "1"),)] = 40.0
        r.tick(values)
        board = analyzer.board.latest()
        for m in metrics:
            x = np.array([values[m][(("k", str(j)),)] for j in range(2)])
            hours = np.full(2, int(r.now // 3600) % 24, dtype=np.int64)
            expected = ensemble_step(params, per_metric[m], x, hours)
            got = np.array([s for mm, s in zip(board.metrics, board.scores, strict=True) if mm == m])
            assert np.array_equal(got, expected)
    assert max(board.scores) >= 0  # the loop ran to the end


def test_the_default_exposition_holds_one_score_per_family(rig: Callable[..., Rig]) -> None:
    r = rig([LAT])
    r.add("anomaly", AnomalyAnalyzer)
    for i in range(5):
        r.tick({LAT: {(("pid", str(p)),): float(p + i) for p in range(300)}})
    assert r.pipe.last_result is not None
    names = [(m.name, dict(p.attributes or {})) for m, p in data_points(r.pipe.last_result.data)]
    anomaly = [n for n in names if n[0].startswith("sysops.anomaly")]
    assert len([n for n in anomaly if n[0] == SCORE_METRIC]) == 1
    assert not [n for n in anomaly if n[0] == SERIES_SCORE_METRIC]
    assert len(anomaly) <= 10


def test_gather_follows_series_that_come_and_go(rig: Callable[..., Rig]) -> None:
    r = rig([LAT])
    analyzer = r.add("anomaly", AnomalyAnalyzer)
    assert isinstance(analyzer, AnomalyAnalyzer)
    a: AttrKey = (("host", "a"),)
    b: AttrKey = (("host", "b"),)
    seen = []
    rounds: list[Series] = [{a: 1.0}, {a: 2.0}, {a: 3.0, b: 4.0}, {b: 5.0}]
    for values in rounds:
        r.tick({LAT: values})
        metrics, attributes, keys, latest = analyzer.gather()
        seen.append((metrics, attributes, keys, latest.tolist()))
    assert seen == [
        ([LAT], [{"host": "a"}], [(LAT, a)], [1.0]),
        ([LAT], [{"host": "a"}], [(LAT, a)], [2.0]),
        ([LAT, LAT], [{"host": "a"}, {"host": "b"}], [(LAT, a), (LAT, b)], [3.0, 4.0]),
        ([LAT], [{"host": "b"}], [(LAT, b)], [5.0]),
    ]
