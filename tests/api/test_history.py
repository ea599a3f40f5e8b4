"""The alert history store: bounded by age and rows, closed firings on restart, private file."""

from __future__ import annotations

from pathlib import Path

from otel_sysops.alerts import Alert, AlertChange, Severity
from otel_sysops.api import AlertHistory, HistoryQuery


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def alert(i: int, at: float) -> Alert:
    return Alert(
        id=f"a{i}",
        fingerprint=f"f{i}",
        rule="r",
        metric="m",
        attributes={"n": str(i)},
        severity=Severity.WARNING,
        state="firing",
        starts_at=at,
        message="x",
        host="h",
    )


def test_rows_past_the_limit_and_older_than_the_age_are_pruned(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    path = tmp_path / "state" / "alerts.db"
    history = AlertHistory(path, max_age=3600.0, max_rows=100, clock=clock)
    for i in range(150):
        history.alert_changed(AlertChange("fired", alert(i, clock.now - 1000 + i)))
    assert history.flush(10.0)
    history.close(5.0)

    reopened = AlertHistory(path, max_age=3600.0, max_rows=100, clock=clock)
    assert reopened.count() == 100
    newest = reopened.query(HistoryQuery(limit=1))["alerts"][0]
    assert newest["id"] == "a149"
    assert newest["end_reason"] == "agent restarted"
    reopened.close(5.0)

    clock.now += 2 * 3600.0
    aged = AlertHistory(path, max_age=3600.0, max_rows=100, clock=clock)
    assert aged.count() == 0
    aged.close(5.0)
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_without_a_path_the_history_is_in_memory_and_readable() -> None:
    history = AlertHistory(None, max_age=3600.0, max_rows=100)
    history.alert_changed(AlertChange("fired", alert(1, 10.0)))
    assert history.flush(10.0)
    assert history.query(HistoryQuery())["total"] == 1
    history.close(5.0)
