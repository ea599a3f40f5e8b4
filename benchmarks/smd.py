"""Score `otel-sysops analyze --hosts` on the Server Machine Dataset (developer split) and print it.

    python benchmarks/smd.py [--shared DIR] [--keep DIR]

The data and the scorer stay in the shared directory (default: `<repo>/../shared`):
`datasets/smd-dev/` and `tools/incident_score.py` (its `export`, then `score`). Runs in a few
minutes on one core (7 machines x 38 series x ~47,000 minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared", help="the shared directory")
    parser.add_argument(
        "--keep", type=Path, help="keep the scored files here (default: a temporary directory)"
    )
    args = parser.parse_args()
    data = args.shared / "datasets" / "smd-dev"
    scorer = args.shared / "tools" / "incident_score.py"
    for needed in (data / "metrics.json", scorer):
        if not needed.exists():
            print(f"smd.py: {needed} not found (pass --shared DIR)", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="smd-") as tmp:
        series = Path(tmp) / "in"
        out = args.keep or Path(tmp) / "out"
        subprocess.run([sys.executable, str(scorer), "export", str(data), str(series)], check=True)
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "otel_sysops",
                "analyze",
                str(series),
                "--output",
                str(out),
                "--hosts",
            ],
            check=True,
        )
        print(f"analyze: {time.perf_counter() - start:.1f} s", flush=True)
        subprocess.run([sys.executable, str(scorer), "score", str(data), str(out)], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
