"""Score `otel-sysops analyze` on the Numenta Anomaly Benchmark and print it beside the published board.

    python benchmarks/nab.py [--shared DIR] [--keep DIR]

The corpus and the scorer stay in the shared directory (default: `<repo>/../shared`):
`datasets/nab/{data,labels,config,results}` and `tools/nab_score.py`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared directory")
    parser.add_argument(
        "--keep", type=Path, help="write the scored files here (default: a temporary directory)"
    )
    args = parser.parse_args()
    nab = args.shared / "datasets" / "nab"
    scorer = args.shared / "tools" / "nab_score.py"
    for needed in (nab / "data", nab / "labels" / "combined_windows.json", scorer):
        if not needed.exists():
            print(f"nab.py: {needed} not found (pass --shared DIR)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="nab-") as tmp:
        out = args.keep or Path(tmp)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "otel_sysops",
                "analyze",
                str(nab / "data"),
                "--output",
                str(out),
            ],
            check=True,
        )
        replay_seconds = time.perf_counter() - start
        scored = subprocess.run(
            [
                sys.executable,
                str(scorer),
                "--data",
                str(nab / "data"),
                "--labels",
                str(nab / "labels" / "combined_windows.json"),
                "--profiles",
                str(nab / "config" / "profiles.json"),
                "--results",
                str(out),
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    ours = {p: v["score"] for p, v in json.loads(scored.stdout)["profiles"].items()}
    rows = sum(1 for _ in (nab / "data").rglob("*.csv"))
    board: dict[str, dict[str, float]] = json.loads((nab / "results" / "final_results.json").read_text())
    board = {name: scores for name, scores in board.items() if name != "null"}
    board["otel-sysops (this run)"] = ours
    print(f"analyze: {rows} files in {replay_seconds:.1f} s\n")
    print(f"{'detector':<26}" + "".join(f"{p:>20}" for p in PROFILES))
    for name, scores in sorted(board.items(), key=lambda kv: -kv[1]["standard"]):
        mark = " <--" if name.startswith("otel-sysops") else ""
        print(f"{name:<26}" + "".join(f"{scores[p]:>20.1f}" for p in PROFILES) + mark)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
