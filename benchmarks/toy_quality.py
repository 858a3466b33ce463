"""Train and evaluate the 2D toys × the four pairings; print the quality table (markdown).

    python benchmarks/toy_quality.py --out=runs/toy_table [--jobs=1] [--arg=spec] [-- --config.a=b]

Each cell is `python -m fdrl_jax.main` train then eval with the shipped config (plus the config
argument `--arg`, e.g. `spec`, and any overrides after `--`). The table reports the classifier
two-sample test (k-NN, 5-fold; 0.5 = indistinguishable) of 5,000 model samples, prior draws
and a second data draw (the noise floor) against 5,000 data points; the model's k-NN
precision / recall against the data; the mixtures' modes holding ≥ 1/4 of their fair share;
the energy distance as a fraction of the prior's; steps and the training wall time. Not run by
CI.
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


def run_cell(out: str, dataset: str, pairing: str, arg: str, extra: list[str]) -> dict:
    wd = os.path.join(out, f"{dataset}_{pairing}")
    cfg = f"--config={DATASETS[dataset]}:{pairing}{',' + arg if arg else ''}"
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    t0, train_wall = time.time(), 0.0
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
        if mode == "train":
            train_wall = time.time() - t0
    with open(os.path.join(wd, "eval", "toy_metrics.json")) as f:
        m = json.load(f)
    return {
        "dataset": dataset,
        "pairing": pairing,
        "wall_s": train_wall,
        "step": m["step"],
        "c2st": m["model_vs_data"]["c2st"],
        "c2st_prior": m["prior_vs_data"]["c2st"],
        "c2st_floor": m["data_vs_data"]["c2st"],
        "precision": m["model_vs_data"]["precision"],
        "recall": m["model_vs_data"]["recall"],
        "modes": m["modes"]["model"]["modes_covered"] if "modes" in m else None,
        "num_modes": m["modes"]["model"]["num_modes"] if "modes" in m else None,
        "ratio": m["energy_ratio_model_over_prior"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/toy_table")
    ap.add_argument("--jobs", type=int, default=1, help="cells trained at once")
    ap.add_argument("--arg", default="", help="extra config argument, e.g. spec")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--pairings", default=",".join(PAIRINGS))
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    os.makedirs(args.out, exist_ok=True)
    cells = [(d, p) for d in args.datasets.split(",") for p in args.pairings.split(",")]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: run_cell(args.out, *c, args.arg, extra), cells))
    with open(os.path.join(args.out, "table.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(
        "| data | pairing | C2ST model | C2ST prior | C2ST data (floor) | precision | recall "
        "| modes | energy / prior's | steps | train wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['dataset']} | {r['pairing']} | failed: {r['failed']} | | | | | | | | |")
            continue
        modes = f"{r['modes']}/{r['num_modes']}" if r["modes"] is not None else "–"
        print(
            f"| {r['dataset']} | {r['pairing']} | {r['c2st']:.3f} | {r['c2st_prior']:.3f} | "
            f"{r['c2st_floor']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {modes} | "
            f"{100 * r['ratio']:.2f}% | {r['step']} | {r['wall_s']:.0f} |"
        )


if __name__ == "__main__":
    main()
