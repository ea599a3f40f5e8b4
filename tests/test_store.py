"""The ring store: O(1) appends into fixed-size rings, rollups, series cap, eviction, SQLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_sysops.sinks import StoreSink
from otel_sysops.store import AttrKey, RingStore, RollupDatabase, attr_key, store_bytes

T0 = 1_700_000_040.0  # a minute boundary


def fill(store: RingStore, ticks: int, series: int = 3, start: float = T0, step: float = 10.0) -> None:
    for t in range(ticks):
        store.begin_tick(start + t * step)
        store.put("m", [attr_key({"i": i}) for i in range(series)], [t * 10.0 + i for i in range(series)])


def test_matrix_is_chronological_and_wraps_at_the_window() -> None:
    store = RingStore(interval=10, raw_window=60)  # 6 slots
    fill(store, 9)
    m = store.matrix("m")
    assert [a["i"] for a in m.attributes] == ["0", "1", "2"]
    np.testing.assert_array_equal(m.timestamps, T0 + np.arange(3, 9) * 10)
    np.testing.assert_array_equal(m.values[1], np.arange(3, 9) * 10.0 + 1)
    _, values = store.last("m", {"i": 2}, 2)
    np.testing.assert_array_equal(values, [72.0, 82.0])
    _ts, values = store.range("m", {"i": 0}, T0 + 50, T0 + 70)
    np.testing.assert_array_equal(values, [50.0, 60.0, 70.0])


def test_a_series_that_stops_reporting_leaves_the_matrix_and_gets_no_point() -> None:
    store = RingStore(interval=10, raw_window=60)
    store.begin_tick(T0)
    store.put("m", [attr_key({"i": 0}), attr_key({"i": 1})], [1.0, 2.0])
    store.begin_tick(T0 + 10)
    store.put("m", [attr_key({"i": 0})], [3.0])
    m = store.matrix("m")
    assert m.attributes == [{"i": "0"}]
    assert store.series("m") == [{"i": "0"}]
    # Its history is kept (no new point: NaN, not a stale value) until it is evicted.
    np.testing.assert_array_equal(store.last("m", {"i": 1}, 2)[1], [2.0, np.nan])
    assert np.isnan(store.last("other", None, 3)[1]).all()
    # A tick in which the metric reports nothing at all is a gap, not an end.
    store.begin_tick(T0 + 20)
    assert store.matrix("m").attributes == [{"i": "0"}]
    store.begin_tick(T0 + 30)
    store.put("m", [attr_key({"i": 1})], [4.0])
    assert store.matrix("m").attributes == [{"i": "1"}]
    np.testing.assert_array_equal(store.matrix("m").values[0, -4:], [2.0, np.nan, np.nan, 4.0])


def test_series_cap_refuses_and_counts_then_eviction_frees_slots() -> None:
    store = RingStore(interval=10, raw_window=60, max_series=4, evict_after=30)
    store.begin_tick(T0)
    store.put("m", [attr_key({"pid": p}) for p in range(6)], [1.0] * 6)
    assert store.series_count == 4
    assert store.refused == 2
    # Metric m then reports nothing (a gap, so its series have not ended): they are kept until
    # evict_after has passed, and new series of another metric are refused until then.
    for k in range(1, 8):
        store.begin_tick(T0 + 10 * k)
        store.put("n", [attr_key({"pid": 100 + k})], [2.0])
    assert store.evicted >= 4
    assert store.evicted_full == 0
    assert {"pid": "0"} not in store.series("m")
    assert store.series_count <= 4
    # Series last seen at T0 become evictable once older than evict_after (strictly): at T0 + 60,
    # so pids 101-105 were refused and 106, 107 took freed slots.
    assert store.refused == 2 + 5
    assert store.last("n", {"pid": 106}, 2)[1][0] == 2.0  # held, though not live this tick
    assert store.series("n") == [{"pid": "107"}]


def test_a_full_store_frees_ended_series_for_new_ones_and_never_live_ones() -> None:
    store = RingStore(interval=10, raw_window=60, max_series=4, evict_after=900)
    store.begin_tick(T0)
    store.put("m", [attr_key({"pid": p}) for p in range(4)], [1.0] * 4)
    # pids 2 and 3 exit; 100 and 101 start: the ended ones make room, long before evict_after.
    store.begin_tick(T0 + 10)
    store.put("m", [attr_key({"pid": p}) for p in (0, 1, 100, 101)], [2.0] * 4)
    assert store.refused == 0
    assert store.evicted_full == 2
    assert store.series("m") == [{"pid": "0"}, {"pid": "1"}, {"pid": "100"}, {"pid": "101"}]
    np.testing.assert_array_equal(store.last("m", {"pid": 0}, 2)[1], [1.0, 2.0])
    assert np.isnan(store.last("m", {"pid": 100}, 2)[1][0])  # nothing of the freed series
    # Every series is live: a new one is refused, none is evicted for it.
    store.begin_tick(T0 + 20)
    store.put("m", [attr_key({"pid": p}) for p in (0, 1, 100, 101, 102)], [3.0] * 5)
    assert store.refused == 1
    assert store.evicted_full == 2
    assert len(store.series("m")) == 4


def test_a_full_store_keeps_the_series_of_a_metric_in_a_gap() -> None:
    store = RingStore(interval=10, raw_window=60, max_series=2, evict_after=900)
    store.begin_tick(T0)
    store.put_many([("g", [attr_key({"disk": "a"})], [1.0]), ("m", [attr_key({"pid": 1})], [1.0])])
    # g reports nothing this tick (its collector failed): its series waits; pid 1 has ended.
    store.begin_tick(T0 + 10)
    store.put("m", [attr_key({"pid": 2})], [2.0])
    assert store.refused == 0
    assert store.evicted_full == 1
    assert store.series("g") == [{"disk": "a"}]
    assert store.series("m") == [{"pid": "2"}]
    # All of a metric's series ended at once: the metric itself stays usable.
    store.begin_tick(T0 + 20)
    store.put("m", [attr_key({"pid": 3})], [3.0])
    assert store.series("m") == [{"pid": "3"}]
    assert store.metrics() == ["g", "m"]


def test_a_full_store_resolving_a_returning_series_never_gives_its_column_away() -> None:
    # The store sink's path (resolve, then write): a series back after one tick away is not ended
    # once it is asked for again, so the room made for a new series beside it is another's column.
    store = RingStore(interval=10, raw_window=60, max_series=3, evict_after=900)
    x, y, p, q = (attr_key({"id": i}) for i in ("x", "y", "p", "q"))
    store.begin_tick(T0)
    store.write(["a", "b"], np.concatenate([store.resolve("a", [x]), store.resolve("b", [p, q])]), np.ones(3))
    store.begin_tick(T0 + 10)  # a reports without x; b loses q
    store.write(
        ["a", "b"], np.concatenate([store.resolve("a", []), store.resolve("b", [p])]), np.full(1, 2.0)
    )
    store.begin_tick(T0 + 20)  # x is back, with a new y: the store is full
    slots = store.resolve("a", [x, y])
    assert slots[0] != slots[1]
    assert store.evicted_full == 1  # q, the one ended series
    store.write(["a"], slots, np.array([3.0, 4.0]))
    np.testing.assert_array_equal(store.last("a", {"id": "x"}, 3)[1][[0, 2]], [1.0, 3.0])
    assert store.last("a", {"id": "y"}, 1)[1].tolist() == [4.0]
    assert store.series("b") == [{"id": "p"}]


def _vmflags(address: int) -> list[str]:
    """Return the VmFlags of the mapping of this process that holds `address` (proc(5): smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_the_rings_are_mapped_without_transparent_huge_pages() -> None:
    # At 1 s ticks the rings are 167 MB; in huge pages, a tick writing a few columns would make
    # every 2 MiB page it touches resident.
    store = RingStore(interval=1, max_series=5000)
    for ring in (store._raw, store._roll):
        assert ring.nbytes > 4 * 2**20  # past numpy's own huge-page threshold
        flags = _vmflags(ring.__array_interface__["data"][0])
        assert "nh" in flags  # MADV_NOHUGEPAGE
        assert "hg" not in flags


def test_ten_thousand_pids_over_time_never_take_more_than_the_declared_bytes() -> None:
    store = RingStore(interval=10, raw_window=600, rollup_window=3600, max_series=700, evict_after=120)
    declared = store_bytes(store.raw_len, store.roll_len, store.max_series)
    assert store.nbytes() == declared
    raw_before = store._raw  # the arrays are allocated once and never replaced
    pid = 0
    for t in range(500):  # 20 new PIDs a tick, each living 10 ticks: 10,000 PIDs in all
        store.begin_tick(T0 + 10 * t)
        live = range(max(0, pid - 180), pid + 20)
        store.put("process.cpu.time", [attr_key({"process.pid": p}) for p in live], [1.0] * len(live))
        store.put("system.memory.limit", [()], [8e9])
        pid += 20
        assert store.nbytes() == declared
        assert store.series_count <= store.max_series
    assert pid == 10_000
    assert store._raw is raw_before
    assert store.refused == 0
    assert store.evicted > 9_000  # columns were freed and reused, not grown
    assert store.last("system.memory.limit", {}, 1)[1][0] == 8e9


def test_a_reused_column_holds_nothing_of_its_previous_series() -> None:
    store = RingStore(interval=10, raw_window=60, rollup_window=600, max_series=1, evict_after=20)
    store.begin_tick(T0)
    store.put("m", [attr_key({"pid": 1})], [5.0])
    for k in range(1, 4):
        store.begin_tick(T0 + 60 * k)  # evicts pid 1 at the first of these
    store.put("m", [attr_key({"pid": 2})], [7.0])
    assert store.refused == 0
    values = store.matrix("m").values[0]
    assert np.nansum(values) == 7.0
    assert np.isnan(store.rollups("m", {"pid": 2}).max[:-1]).all()


def test_rollups_hold_min_max_mean_last_per_minute() -> None:
    store = RingStore(interval=10, raw_window=60, rollup_window=600)
    fill(store, 13, series=1)  # minutes [T0, T0+60) and [T0+60, T0+120) closed at t=120
    r = store.rollups("m", {"i": 0})
    np.testing.assert_array_equal(r.timestamps, [T0, T0 + 60])
    np.testing.assert_array_equal(r.min, [0.0, 60.0])
    np.testing.assert_array_equal(r.max, [50.0, 110.0])
    np.testing.assert_array_equal(r.mean, [25.0, 85.0])
    np.testing.assert_array_equal(r.last, [50.0, 110.0])


def test_many_series_of_one_metric_keep_their_history() -> None:
    store = RingStore(interval=10, raw_window=60)
    store.begin_tick(T0)
    store.put("m", [attr_key({"i": 0})], [5.0])
    store.begin_tick(T0 + 10)
    store.put("m", [attr_key({"i": i}) for i in range(100)], np.arange(100.0))
    m = store.matrix("m")
    assert len(m.attributes) == 100
    np.testing.assert_array_equal(store.last("m", {"i": 0}, 2)[1], [5.0, 0.0])


def test_rollups_survive_a_restart_through_sqlite(tmp_path: Path) -> None:
    import time

    now = time.time()
    start = (now // 60) * 60 - 600
    db_path = tmp_path / "state" / "rollups.db"
    first = RingStore(interval=10, raw_window=60, rollup_window=3600)
    db = RollupDatabase(db_path, 3600)
    db.attach(first)
    fill(first, 31, series=2, start=start)  # five closed minutes
    expected = first.rollups("m", {"i": 1})
    db.close()

    second = RingStore(interval=10, raw_window=60, rollup_window=3600)
    db2 = RollupDatabase(db_path, 3600)
    assert db2.attach(second) == 2 * 5
    restored = second.rollups("m", {"i": 1})
    np.testing.assert_array_equal(restored.timestamps, expected.timestamps)
    np.testing.assert_allclose(restored.mean, expected.mean)
    np.testing.assert_allclose(restored.max, expected.max)
    db2.close()


def test_put_before_begin_tick_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        RingStore().put("m", [()], [1.0])


def test_pipeline_persists_rollups_and_a_reload_keeps_the_store(tmp_path: Path) -> None:
    import time

    from otel_sysops.agent import build_pipeline
    from otel_sysops.settings import load_settings

    db = tmp_path / "rollups.db"
    settings = load_settings(
        None,
        {"prometheus": {"enabled": False}, "store": {"sqlite_path": str(db), "rollup_resolution": 60}},
        environ={},
    )
    first = build_pipeline(settings)
    start = (time.time() // 60) * 60 - 300
    for k in range(20):
        first.tick(timestamp=start + k * 10)
    assert first.store.rollups("system.memory.limit", {}).timestamps.size == 3
    # A reload with the same store shape hands the same store (and database) over.
    reloaded = build_pipeline(settings, previous=first)
    first.close(1.0)
    assert reloaded.store is first.store
    assert reloaded.rollup_db is not None
    # A different interval means a different shape: a fresh store, refilled from SQLite.
    other = load_settings(
        None,
        {
            "prometheus": {"enabled": False},
            "interval": 5,
            "store": {"sqlite_path": str(db), "rollup_resolution": 60},
        },
        environ={},
    )
    reloaded.close(1.0)
    fresh = build_pipeline(other)
    assert fresh.store is not first.store
    assert fresh.store.rollups("system.memory.limit", {}).timestamps.size == 3
    fresh.close(1.0)


def test_the_mmap_threshold_can_be_pinned_on_glibc() -> None:
    import platform

    from otel_sysops._memory import pin_mmap_threshold

    if platform.libc_ver()[0] == "glibc":
        assert pin_mmap_threshold() is True


def test_the_gc_young_generation_threshold_is_raised() -> None:
    import gc

    from otel_sysops._memory import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    try:
        assert tune_gc() == (GC_YOUNG_THRESHOLD, *before[1:])
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD > before[0]
    finally:
        gc.set_threshold(*before)


def test_malloc_arenas_can_be_limited_on_glibc() -> None:
    import platform

    from otel_sysops._memory import limit_malloc_arenas

    if platform.libc_ver()[0] == "glibc":
        assert limit_malloc_arenas(8) is True  # 8 per core is glibc's own limit: harmless here


def test_latest_is_the_last_column_of_each_selected_matrix() -> None:
    store = RingStore(interval=10, raw_window=60)
    assert store.latest(lambda _: True) == []  # no tick yet
    fill(store, 8)
    store.put("n", [attr_key({"j": "x"})], [7.0])
    store.begin_tick(T0 + 80)
    store.put("m", [attr_key({"i": 1}), attr_key({"i": 5})], [1.5, 2.5])  # 0 and 2 ended
    store.put("other", [()], [9.0])
    got = store.latest(lambda name: name != "other")
    assert [name for name, _, _ in got] == ["m", "n"]
    for name, keys, values in got:
        matrix = store.matrix(name, 1)
        assert [dict(k) for k in keys] == matrix.attributes
        np.testing.assert_array_equal(values, matrix.values[:, -1])
    assert got[0][1] == [attr_key({"i": 1}), attr_key({"i": 5})]
    np.testing.assert_array_equal(got[0][2], [1.5, 2.5])
    assert np.isnan(got[1][2]).all()  # "n" reported in an earlier tick only: the gap reads NaN


def test_latest_follows_new_refused_and_evicted_series() -> None:
    store = RingStore(interval=10, raw_window=60, max_series=3, evict_after=20)
    a, b, c = (attr_key({"i": i}) for i in range(3))
    store.begin_tick(T0)
    store.put("m", [a], [1.0])
    assert [(n, k) for n, k, _ in store.latest(lambda _: True)] == [("m", [a])]
    store.begin_tick(T0 + 10)
    store.put("m", [a, b], [2.0, 3.0])  # a new series after a read
    store.put("full", [c, a, b], [0.0, 0.0, 0.0])  # one column left: only c is kept
    store.put("refused", [a], [4.0])  # no column left: the metric has no series
    got = store.latest(lambda _: True)
    assert [(n, k) for n, k, _ in got] == [("full", [c]), ("m", [a, b])]
    np.testing.assert_array_equal(got[1][2], [2.0, 3.0])
    store.begin_tick(T0 + 60)  # every series is past evict_after: all columns are freed
    store.put("m", [b], [5.0])  # b gets a column again
    got = store.latest(lambda _: True)
    assert [(n, k) for n, k, _ in got] == [("m", [b])]
    np.testing.assert_array_equal(got[0][2], [5.0])
    assert store.matrix("m", 1).attributes == [{"i": "1"}]


def test_put_many_stores_what_separate_puts_store() -> None:
    one, many = RingStore(interval=10, raw_window=60), RingStore(interval=10, raw_window=60)
    batch: list[tuple[str, list[AttrKey], list[float]]] = [
        ("a", [attr_key({"i": 0}), attr_key({"i": 1})], [1.0, float("nan")]),
        ("b", [()], [5.0]),
        ("a", [attr_key({"i": 0})], [3.0]),  # a column twice in one tick: applied in order
    ]
    for tick in range(3):
        for store in (one, many):
            store.begin_tick(T0 + 60 * tick)
        for name, keys, values in batch:
            one.put(name, keys, [v + tick for v in values])
        many.put_many([(n, k, [v + tick for v in vs]) for n, k, vs in batch])
    for name in ("a", "b"):
        np.testing.assert_array_equal(one.matrix(name).values, many.matrix(name).values)
        assert one.matrix(name).attributes == many.matrix(name).attributes
    for attrs in ({"i": 0}, {"i": 1}):  # rollups (min, max, mean, last) built from the same points
        mine, theirs = one.rollups("a", attrs), many.rollups("a", attrs)
        assert mine.timestamps.size > 0
        for field in ("timestamps", "min", "max", "mean", "last"):
            np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field))


def _collection(metrics: list[tuple[str, list[tuple[dict[str, object], float]]]]) -> MetricsData:
    scopes = [
        ScopeMetrics(
            InstrumentationScope(f"scope{i}"),
            [
                Metric(
                    name,
                    "",
                    "1",
                    Gauge([NumberDataPoint(attrs, 0, 1, value) for attrs, value in points]),  # type: ignore[arg-type]
                )
            ],
            "",
        )
        for i, (name, points) in enumerate(metrics)
    ]
    return MetricsData([ResourceMetrics(Resource({}), scopes, "")])


def _contents(store: RingStore) -> tuple[object, ...]:
    names = sorted(store._metrics)  # every metric, live or not
    matrices = [(n, store.matrix(n).attributes, store.matrix(n).values.tolist()) for n in names]
    return (repr(matrices), store.refused, store.evicted, store.evicted_full, store.series_count)


def test_the_store_sink_stores_what_per_metric_puts_store() -> None:
    """Series come and go, a metric appears twice in one collection, values are not finite, the
    cap refuses series and ended ones make room: the sink's cached columns change nothing."""
    rng = np.random.default_rng(3)
    fed, ref = (RingStore(interval=10, raw_window=120, max_series=6, evict_after=40) for _ in range(2))
    sink = StoreSink(fed)
    for tick in range(60):
        metrics: list[tuple[str, list[tuple[dict[str, object], float]]]] = []
        for name in ("a", "b", "a", "c"):
            if rng.random() < 0.15:
                continue
            series = range(int(rng.integers(1, 5))) if tick % 7 else range(3)
            values = [float(rng.choice([rng.normal(), np.nan, np.inf, 7.0])) for _ in series]
            metrics.append(
                (name, [({"i": i, "tag": ["x", "y"]}, v) for i, v in zip(series, values, strict=True)])
            )
        ts = T0 + 10 * tick
        sink.consume(_collection(metrics), ts)
        ref.begin_tick(ts)
        for name, points in metrics:
            finite = [v if np.isfinite(v) else np.nan for _, v in points]
            ref.put(name, [attr_key(a) for a, _ in points], finite)
        assert _contents(fed) == _contents(ref), tick
    assert ref.refused  # the cap was reached
    assert ref.evicted_full  # and ended series were freed for new ones
