"""`otel-sysops analyze` on files and directories: one row per input row, streaming, clear errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzers.replay import infer_interval, parse_timestamp, read_series
from otel_sysops.cli import main


def _write(path: Path, rows: list[tuple[str, str]], header: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        if header:
            out.writerow(["timestamp", "value"])
        out.writerows(rows)
    return path


def _series(
    n: int, spike: int | None = None, start: int = 1_600_000_000, step: int = 300
) -> list[tuple[str, str]]:
    rng = np.random.default_rng(n)
    values = 10 + rng.normal(0, 1, n)
    if spike is not None:
        values[spike] = 40.0
    return [(str(start + i * step), repr(float(v))) for i, v in enumerate(values)]


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_a_file_gets_one_scored_row_per_input_row(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.csv", _series(2000, spike=1500))
    out = tmp_path / "out.csv"
    assert main(["analyze", str(src), "--output", str(out)]) == 0
    rows = _read(out)
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == 2001
    src_rows = _read(src)
    assert [r[:2] for r in rows[1:]] == [r[:2] for r in src_rows[1:]]
    scores = np.array([float(r[2]) for r in rows[1:]])
    assert scores.argmax() == 1500
    assert scores[1500] > 0.9


def test_a_directory_is_walked_and_mirrored(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write(src / "a" / "one.csv", _series(600))
    _write(src / "b" / "deep" / "two.csv", _series(900, spike=700, step=60))
    iso = [(f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z", str(i % 7)) for i in range(300)]
    _write(src / "iso.csv", iso)
    out = tmp_path / "out"
    assert main(["analyze", str(src), "--output", str(out)]) == 0
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.csv"))
    assert found == ["a/one.csv", "b/deep/two.csv", "iso.csv"]
    assert len(_read(out / "b" / "deep" / "two.csv")) == 901


def test_scores_only_use_rows_up_to_them(tmp_path: Path) -> None:
    rows = _series(1500, spike=1000)
    full_in = _write(tmp_path / "full.csv", rows)
    main(["analyze", str(full_in), "--output", str(tmp_path / "full_out.csv")])
    full = [r[2] for r in _read(tmp_path / "full_out.csv")[1:]]
    for cut in (400, 1000, 1001):
        part_in = _write(tmp_path / f"p{cut}.csv", rows[:cut])
        main(["analyze", str(part_in), "--output", str(tmp_path / f"p{cut}_out.csv")])
        assert [r[2] for r in _read(tmp_path / f"p{cut}_out.csv")[1:]] == full[:cut]


def test_files_scored_together_score_as_alone(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _write(src / "x.csv", _series(800, spike=600))
    _write(src / "y.csv", _series(1300, spike=900))
    main(["analyze", str(src), "--output", str(tmp_path / "together")])
    main(["analyze", str(src / "x.csv"), "--output", str(tmp_path / "alone.csv")])
    assert _read(tmp_path / "together" / "x.csv") == _read(tmp_path / "alone.csv")


@pytest.mark.parametrize(
    ("content", "line", "what"),
    [
        ("timestamp,value\n1600000000,1\n1600000300,abc\n", 3, "value 'abc'"),
        ("timestamp,value\n1600000000,1\nyesterday,2\n", 3, "timestamp 'yesterday'"),
        ("timestamp,value\n1600000000,1\n1600000300,2\n1600000600\n", 4, "expected timestamp,value"),
    ],
)
def test_malformed_rows_name_file_and_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, line: int, what: str
) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(content)
    assert main(["analyze", str(src), "--output", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert f"{src}:{line}:" in err
    assert what in err
    assert not (tmp_path / "o.csv").exists()


def test_missing_input_exits_2(tmp_path: Path) -> None:
    assert main(["analyze", str(tmp_path / "nope"), "--output", str(tmp_path / "o")]) == 2


def test_gaps_and_nan_values_get_rows_with_zero_score(tmp_path: Path) -> None:
    rows = _series(400)
    rows[100] = (rows[100][0], "")
    rows[101] = (rows[101][0], "nan")
    src = _write(tmp_path / "gaps.csv", rows, header=False)
    main(["analyze", str(src), "--output", str(tmp_path / "o.csv")])
    out = _read(tmp_path / "o.csv")
    assert len(out) == 401
    assert out[101][2] == "0.000000"
    assert out[102][2] == "0.000000"


def test_timestamp_formats_and_interval() -> None:
    assert parse_timestamp("2015-07-10 14:24:00") == parse_timestamp("2015-07-10T14:24:00+00:00")
    assert parse_timestamp("1436538240") == parse_timestamp("2015-07-10T14:24:00Z")
    assert infer_interval(np.array([0.0, 300.0, 600.0, 1500.0, 1800.0])) == 300.0
    assert np.isnan(infer_interval(np.array([5.0])))


def test_read_series_keeps_the_original_timestamp_text(tmp_path: Path) -> None:
    src = _write(tmp_path / "t.csv", [("2015-07-10 14:24:00", "1"), ("2015-07-10 14:29:00", "2")])
    series = read_series(src)
    assert series.stamps == ["2015-07-10 14:24:00", "2015-07-10 14:29:00"]
    assert series.values.tolist() == [1.0, 2.0]


@pytest.mark.slow
def test_the_installed_command_runs(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.csv", _series(300))
    done = subprocess.run(
        [sys.executable, "-m", "otel_sysops", "analyze", str(src), "--output", str(tmp_path / "o.csv")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(_read(tmp_path / "o.csv")) == 301


def test_hosts_mode_writes_the_host_score_of_each_folder(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _write(src / "web-1" / "cpu.csv", _series(600, spike=500))
    _write(src / "web-1" / "load.csv", _series(600, spike=500))
    _write(src / "web-1" / "disk.csv", _series(600))
    _write(src / "web-2" / "cpu.csv", _series(600))
    assert main(["analyze", str(src), "--output", str(out), "--hosts"]) == 0
    web1 = _read(out / "web-1" / "host-score.csv")
    assert web1[0] == ["timestamp", "host_score"]
    assert len(web1) == 601
    series = {
        name: np.array([float(r[2]) for r in _read(out / "web-1" / f"{name}.csv")[1:]])
        for name in ("cpu", "load", "disk")
    }
    host = np.array([float(r[1]) for r in web1[1:]])
    expected = np.sort(np.vstack(list(series.values())), axis=0)[-3:].sum(axis=0) / 3
    assert np.allclose(host, expected, atol=2e-6)
    assert host[500] > 0.5
    web2 = _read(out / "web-2" / "host-score.csv")
    # One series alone counts for a third of the host score.
    cpu2 = np.array([float(r[2]) for r in _read(out / "web-2" / "cpu.csv")[1:]])
    assert np.allclose([float(r[1]) for r in web2[1:]], cpu2 / 3, atol=2e-6)
