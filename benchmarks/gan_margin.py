"""The margins of tests/test_dgflow.py's GAN + refinement test, over seeds.

Runs exactly the test's pipeline (`test_dgflow.gan_and_refine`: `--mode=gan` then
`--mode=refine` with KL on 25 Gaussians at the shipped settings) for each seed and prints the
base GAN's energy distance to the data, the refined one, the gain and DGflow's high-quality
fraction, so the test's bars can be set outside the spread.

    python benchmarks/gan_margin.py --seeds=10 [--param_init=torch]
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
import test_dgflow as td


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--param_init", default=None, help="gan.param_init (default: shipped)")
    ap.add_argument("--num_steps", type=int, default=None, help="gan.num_steps")
    args = ap.parse_args()
    fields = {k: v for k, v in (("param_init", args.param_init), ("num_steps", args.num_steps))}
    fields = {k: v for k, v in fields.items() if v is not None}
    print(f"gan fields: {fields or 'shipped'}")
    print("| seed | GAN energy | refined energy | gain | high quality before → after | s |")
    print("|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.seeds):
        t0 = time.time()
        with tempfile.TemporaryDirectory() as wd:
            r = td.gan_and_refine(wd, seed, **fields)
        q0, q1 = r["quality_before"], r["quality_after"]
        rows.append((r["energy_distance_before"], r["gain"]))
        print(
            f"| {seed} | {r['energy_distance_before']:.4f} | {r['energy_distance_after']:.4f} "
            f"| {100 * r['gain']:.1f}% | {q0['high_quality_fraction']:.3f} → "
            f"{q1['high_quality_fraction']:.3f} | {time.time() - t0:.0f} |",
            flush=True,
        )
    e, g = np.array(rows).T
    print(f"| all | {e.min():.4f}-{e.max():.4f} | | {100 * g.min():.1f}-{100 * g.max():.1f}% | | |")


if __name__ == "__main__":
    main()
