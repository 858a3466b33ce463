"""The margins of the density-chasm tests in tests/test_trainer.py, over many seeds.

The test trains one seed and compares the samples with fixed bars; this runs exactly the
test's training (`test_trainer.train_chasm`) for each seed, FDRL and the stale estimator,
and prints what the bars are compared with, so the bars can be set well outside the spread.

    python benchmarks/learning_margin.py --seeds=10
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
)
import test_trainer as tl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    print(f"prior mean at distance {tl.PRIOR_DISTANCE:.2f} from the data's")
    print("| estimator | seed | distance of the sample mean | share within 1 | seconds |")
    print("|---|---|---|---|---|")
    for stale in (False, True):
        dists, nears = [], []
        for seed in range(args.seeds):
            t0 = time.time()
            distance, near = tl.summary(tl.train_chasm(seed, stale=stale))
            dists.append(distance)
            nears.append(near)
            name = "stale" if stale else "FDRL"
            print(f"| {name} | {seed} | {distance:.3f} | {near:.3f} | {time.time() - t0:.1f} |")
        print(
            f"| {name} | all | {np.min(dists):.3f}-{np.max(dists):.3f} "
            f"| {np.min(nears):.3f}-{np.max(nears):.3f} | |",
            flush=True,
        )


if __name__ == "__main__":
    main()
