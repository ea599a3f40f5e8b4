"""Live series only: a series that stops reporting is gone from the next /metrics, store and analyzers."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Observation

from otel_sysops.alerts import Finding
from otel_sysops.pipeline import Pipeline
from otel_sysops.plugin import Analyzer, AnalyzerContext
from otel_sysops.settings import Settings
from otel_sysops.sinks import PrometheusSink


class InputRecorder(Analyzer):
    """Records the series the store hands an analyzer each tick (what every analyzer reads)."""

    def __init__(self, ctx: AnalyzerContext) -> None:
        super().__init__(ctx)
        self.seen: list[list[dict[str, str]]] = []

    def analyze(self, now: float) -> Iterable[Finding]:
        self.seen.append(self.ctx.store.matrix("test.process.memory").attributes)
        return []


def test_an_exited_process_is_absent_from_the_next_tick_everywhere(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    pipe = Pipeline(settings, load=False)
    sink = PrometheusSink()
    pipe.add_sink(sink)
    recorder = InputRecorder(AnalyzerContext("recorder", settings, pipe.store))
    pipe.add_analyzer("recorder", recorder)
    alive = {"pids": [101, 102]}

    def memory(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1000.0 * pid, {"process.pid": pid}) for pid in alive["pids"]]

    def stable(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(8.0e9)]

    pipe.churning_meter("test").create_observable_gauge("test.process.memory", [memory], "By")
    pipe.meter("test").create_observable_gauge("test.memory.limit", [stable], "By")
    try:
        pipe.tick(timestamp=1_700_000_000.0)
        assert 'test_process_memory_bytes{process_pid="102"} 102000.0' in sink.render().decode()
        assert recorder.seen[-1] == [{"process.pid": "101"}, {"process.pid": "102"}]
        alive["pids"] = [101]
        pipe.tick(timestamp=1_700_000_010.0)
        for fmt in ("text", "openmetrics"):
            served = sink.render(fmt).decode()
            assert 'process_pid="101"' in served
            assert 'process_pid="102"' not in served  # not exported, not as 0 either
        assert pipe.store.matrix("test.process.memory").attributes == [{"process.pid": "101"}]
        assert recorder.seen[-1] == [{"process.pid": "101"}]
        # Not stored as a new point: its column holds nothing for this tick.
        _, values = pipe.store.last("test.process.memory", {"process.pid": 102}, 2)
        assert values[0] == 102000.0
        assert values[1] != values[1]  # NaN
        assert pipe.store.matrix("test.memory.limit").values[0, -1] == 8.0e9
    finally:
        pipe.close(1.0)
