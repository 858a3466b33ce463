"""Train and evaluate the 2D toys × the four pairings; print the quality table (markdown).

    python benchmarks/toy_quality.py --out=runs/toy_table [--jobs=2] [-- --config.x=y ...]

Each cell is `python -m fdrl_jax.main` train then eval with the shipped config; the table
reports the model-vs-data energy distance, its ratio to prior-vs-data (the acceptance bar is
<= 5%), the data-vs-data noise floor, steps and wall time. Not run by CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time

DATASETS = {
    "swissroll": "configs/swissroll.py",
    "8gaussians": "configs/gaussians8.py",
    "25gaussians": "configs/gaussians25.py",
}
PAIRINGS = ["lsif-chi2", "lr-kl", "lr-js", "lr-logd"]


def run_cell(out: str, dataset: str, pairing: str, extra: list[str]) -> dict:
    wd = os.path.join(out, f"{dataset}_{pairing}")
    cfg = f"--config={DATASETS[dataset]}:{pairing}"
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    t0 = time.time()
    for mode in ("train", "eval"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "fdrl_jax.main",
                cfg,
                f"--workdir={wd}",
                f"--mode={mode}",
                *extra,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(out, f"{dataset}_{pairing}.log"), "a"),
        )
        if proc.returncode != 0:  # e.g. the divergence guard stopped training
            return {
                "dataset": dataset,
                "pairing": pairing,
                "wall_s": time.time() - t0,
                "failed": f"{mode} exited {proc.returncode} (see {wd}.log)",
            }
    wall = time.time() - t0
    with open(os.path.join(wd, "eval", "toy_metrics.json")) as f:
        m = json.load(f)
    return {
        "dataset": dataset,
        "pairing": pairing,
        "wall_s": wall,
        "step": m["step"],
        "model": m["model_vs_data"]["energy_distance"],
        "prior": m["prior_vs_data"]["energy_distance"],
        "floor": m["data_vs_data"]["energy_distance"],
        "ratio": m["energy_ratio_model_over_prior"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/toy_table")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--pairings", default=",".join(PAIRINGS))
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    os.makedirs(args.out, exist_ok=True)
    cells = [(d, p) for d in args.datasets.split(",") for p in args.pairings.split(",")]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: run_cell(args.out, *c, extra), cells))
    with open(os.path.join(args.out, "table.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(
        "| data | pairing | energy model-data | prior-data | ratio | noise floor | steps "
        "| wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(
                f"| {r['dataset']} | {r['pairing']} | failed: {r['failed']} | | | | | "
                f"{r['wall_s']:.0f} |"
            )
            continue
        print(
            f"| {r['dataset']} | {r['pairing']} | {r['model']:.5f} | {r['prior']:.4f} | "
            f"{100 * r['ratio']:.2f}% | {r['floor']:.5f} | {r['step']} | {r['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
