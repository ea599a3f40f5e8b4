"""CPU per series of the batched anomaly step (one `ensemble_step` over every series of a host).

    python benchmarks/anomaly_step.py [--series 10000] [--ticks 200]

Steps N series (a mix of noisy, flat and counter-like values) for a number of ticks after a warm-up
and prints the thread CPU per tick and per series per tick, beside the cost of one numpy add over
the same vector (the floor any vectorised step pays), measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analyzers.ensemble import EnsembleParams, EnsembleState, ensemble_step


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--ticks", type=int, default=200)
    args = parser.parse_args()
    n = args.series
    rng = np.random.default_rng(1)
    params = EnsembleParams().scaled(10.0)
    state = EnsembleState.empty(n, params)
    base = rng.uniform(0, 100, n)
    hours = np.zeros(n, dtype=np.int64)
    for _ in range(300):  # past warm-up, so every member runs
        ensemble_step(params, state, base + rng.normal(0, 1, n), hours)
    samples = [base + rng.normal(0, 1, n) for _ in range(args.ticks)]
    rounds = []
    for _ in range(2):  # A B A B: the step, then the floor
        start = time.thread_time()
        for x in samples:
            ensemble_step(params, state, x, hours)
        step = (time.thread_time() - start) / args.ticks
        start = time.thread_time()
        for x in samples:
            np.add(x, x)
        floor = (time.thread_time() - start) / args.ticks
        rounds.append((step, floor))
    step = min(r[0] for r in rounds)
    floor = min(r[1] for r in rounds)
    print(f"{n} series: {step * 1e3:.2f} ms per tick, {step / n * 1e6:.2f} us per series per tick")
    print(f"one numpy add over the same vector: {floor * 1e6:.1f} us (ratio {step / max(floor, 1e-9):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
