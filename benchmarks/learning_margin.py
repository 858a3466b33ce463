"""The margins of the tests that train a model and compare it with fixed bars, over seeds.

Each test trains one seed; this runs exactly the test's training for each seed and prints
what the bars are compared with, so the bars can be set well outside the spread:

- `chasm` (tests/test_trainer.py): FDRL and the stale estimator on the density chasm; the
  distance of the sample mean from the data's and the share of samples within 1 of it;
- `translate` (tests/test_translate_mode.py): the tiny digits pair, the share of the sources
  and of their translations a logistic regression calls domain B, and the content kept;
- `ratio` (tests/test_divergences.py): each loss's fitted log ratio (mean absolute error,
  correlation) and its loss at the fit; `--steps` / `--lr` try other fits.

    python benchmarks/learning_margin.py --test=chasm --seeds=10
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
)


def chasm(seeds: int) -> None:
    import test_trainer as tl

    print(f"prior mean at distance {tl.PRIOR_DISTANCE:.2f} from the data's")
    print("| estimator | seed | distance of the sample mean | share within 1 | seconds |")
    print("|---|---|---|---|---|")
    for stale in (False, True):
        dists, nears = [], []
        for seed in range(seeds):
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


def translate(seeds: int) -> None:
    import test_translate_mode as tt

    from fdrl_jax.data import pairs
    from fdrl_jax.evaluation import features

    features.make_inception_feature_fn = lambda **kw: tt.stand_in_features
    print(f"test size: {tt.TEST_SIZE}")
    print("| seed | sources called B | translations called B | content kept | seconds |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "pair")
        pairs.digits_pair(root)
        for seed in range(seeds):
            t0 = time.time()
            _, result, _, (before, after) = tt.translate_pair(root, f"{tmp}/run{seed}", seed)
            print(
                f"| {seed} | {before:.2f} | {after:.2f} | {result['content_kept']:.2f} "
                f"| {time.time() - t0:.1f} |",
                flush=True,
            )


def ratio(seeds: int, steps: int | None, lr: float | None) -> None:
    import test_divergences as td

    fit = {"steps": steps or td.FIT["steps"], "lr": lr or td.FIT["lr"]}
    print(f"fit: {fit}")
    print("| loss | seed | mean abs. error of log r | correlation | loss at the fit | seconds |")
    print("|---|---|---|---|---|---|")
    for name in ("lsif", "lr", "kliep"):
        for seed in range(seeds):
            t0 = time.time()
            mae, corr, at_fit = td.fit_ratio(name, seed, **fit)
            print(
                f"| {name} | {seed} | {mae:.3f} | {corr:.4f} | {at_fit:.4f} "
                f"| {time.time() - t0:.1f} |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--test", choices=("chasm", "translate", "ratio"), default="chasm")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=None, help="ratio: Adam steps")
    ap.add_argument("--lr", type=float, default=None, help="ratio: Adam's learning rate")
    args = ap.parse_args()
    if args.test == "chasm":
        chasm(args.seeds)
    elif args.test == "translate":
        translate(args.seeds)
    else:
        ratio(args.seeds, args.steps, args.lr)


if __name__ == "__main__":
    main()
