"""Cost of handing findings to the alert sink: the manager against the plain log sink, side by side.

Three loads, each as findings per second on the caller's thread (the tick's worker thread):
- steady: 2,000 series firing at warning, submitted again every tick (the dedup path, the common case);
- clears: the same series clearing (state removal, resolved alerts queued);
- storm: 10,000 distinct new series (every one notified, grouped and counted; channels not running).
Run: python benchmarks/alerts_submit.py
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from otel_sysops.alerts import AlertManager, Finding, LogAlertSink, Severity
from otel_sysops.alerts._log import LogChannel

SERIES = 2000
ROUNDS = 5


def findings(n: int, severity: Severity | None, prefix: str = "s") -> list[Finding]:
    return [
        Finding("cpu.high", "system.cpu.utilization", {"cpu": f"{prefix}{i}"}, severity, "busy", 0.9, 0.8)
        for i in range(n)
    ]


def rate(submit: Callable[[Finding], None], batch: list[Finding]) -> float:
    start = time.perf_counter()
    for finding in batch:
        submit(finding)
    return len(batch) / (time.perf_counter() - start)


def run() -> dict[str, tuple[float, float]]:
    logging.disable(logging.CRITICAL)  # measure the sinks, not the log handler
    out: dict[str, tuple[float, float]] = {}
    manager = AlertManager("bench")
    manager.add_channel(LogChannel())
    log_sink = LogAlertSink()
    firing = findings(SERIES, Severity.WARNING)
    rate(manager.submit, firing)
    rate(log_sink.submit, firing)
    steady = [(rate(manager.submit, firing), rate(log_sink.submit, firing)) for _ in range(ROUNDS)]
    out["steady"] = (max(s[0] for s in steady), max(s[1] for s in steady))
    clears = findings(SERIES, None)
    out["clears"] = (rate(manager.submit, clears), rate(log_sink.submit, clears))
    storm = findings(10_000, Severity.CRITICAL, "storm")
    fresh = AlertManager("bench")
    fresh.add_channel(LogChannel())
    out["storm"] = (rate(fresh.submit, storm), rate(LogAlertSink().submit, storm))
    return out


def main() -> None:
    results = run()
    print(f"{'load':<8} {'AlertManager/s':>15} {'LogAlertSink/s':>15} {'ratio':>7}")
    for load, (manager, log_sink) in results.items():
        print(f"{load:<8} {manager:>15,.0f} {log_sink:>15,.0f} {manager / log_sink:>7.2f}")


if __name__ == "__main__":
    main()
