"""Train and evaluate the 2D toys and point clouds × the four pairings; print the quality table.

    python benchmarks/toy_quality.py --out=runs/toy_table [--jobs=1] [--seeds=0] [--arg=paper] \
        [--datasets=swissroll,...,rings] [--figure=toys.png] [--reuse | --report] \
        [-- --config.a=b]

Datasets: the three toys of `configs/` and the point clouds of `benchmarks/toy_shapes.py`
(written to `<out>/shapes/` first), which no shipped setting was chosen on; a point cloud
trains with the swiss roll's config file and `--config.data.name=points
--config.data.path=<out>/shapes/<shape>.npy`, i.e. the settings any new point cloud gets.

Each cell (dataset × pairing × training seed) is `python -m fdrl_jax.main` train, eval and
sample with the shipped config (plus the config argument `--arg`, e.g. `paper`, and any
overrides after `--`). The first table is the classifier two-sample test (k-NN, k = 15,
5-fold; 0.5 = indistinguishable) of 5,000 model samples against 5,000 data points, per
dataset and pairing, with the prior's and a second data draw's (the noise floor); the second
has every column: the model's k-NN precision / recall against the data, the mixtures' modes
holding ≥ 1/4 of their fair share and the width of the samples around the mode nearest to
each (RMS offset per coordinate within 4 mode std, over the data's own: 1.0 is as sharp as
the data), the energy distance as a fraction of the prior's, steps and the training wall
time. `--figure` draws every cell's samples in one picture; `--reuse` takes cells already run
in `--out` (so runs split over several calls print one table); `--report` trains nothing and
prints the cells there are. Not run by CI.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import toy_shapes  # benchmarks/ is not a package

TOYS = {
    "swissroll": "configs/swissroll.py",
    "8gaussians": "configs/gaussians8.py",
    "25gaussians": "configs/gaussians25.py",
}
# Point clouds get the settings a user's cloud gets: a toy config file with data.name = points.
POINT_CONFIG = "configs/swissroll.py"
DATASETS = [*TOYS, *toy_shapes.SHAPES]
PAIRINGS = ["lsif-chi2", "lr-kl", "lr-js", "lr-logd"]
# The evaluation's seeds (config defaults, printed with the table).
EVAL_SEEDS = "evaluation seed eval.seed = 2: model, prior and data draws, C2ST folds"


def cell_args(out: str, dataset: str, pairing: str, arg: str, seed: int) -> tuple[str, list]:
    wd = os.path.join(out, f"{dataset}_{pairing}_s{seed}")
    file = TOYS.get(dataset, POINT_CONFIG)
    flags = [f"--config={file}:{pairing}{',' + arg if arg else ''}", f"--config.seed={seed}"]
    if dataset not in TOYS:
        path = os.path.join(out, "shapes", f"{dataset}.npy")
        flags += ["--config.data.name=points", f"--config.data.path={path}"]
    return wd, flags


def run_cell(
    out: str, dataset: str, pairing: str, seed: int, arg: str, extra: list[str], reuse: str
) -> dict | None:
    """Train, evaluate and sample one cell; with `reuse` "reuse" take its `cell.json` if there
    is one, with "report" return that or None (train nothing)."""
    wd, flags = cell_args(out, dataset, pairing, arg, seed)
    done = os.path.join(wd, "cell.json")
    if reuse and os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    if reuse == "report":
        return None
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    t0, train_wall = time.time(), 0.0
    head = {"dataset": dataset, "pairing": pairing, "seed": seed, "workdir": wd}
    for mode in ("train", "eval", "sample"):
        with open(f"{wd}.log", "a") as log:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fdrl_jax.main",
                    *flags,
                    f"--workdir={wd}",
                    f"--mode={mode}",
                    *extra,
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        if proc.returncode != 0:  # e.g. the divergence guard stopped training
            return {
                **head,
                "wall_s": time.time() - t0,
                "failed": f"{mode} exited {proc.returncode} (see {wd}.log)",
            }
        if mode == "train":
            train_wall = time.time() - t0
    with open(os.path.join(wd, "eval", "toy_metrics.json")) as f:
        m = json.load(f)
    row = {
        **head,
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
    with open(done, "w") as f:
        json.dump(row, f, indent=2)
    return row


def c2st_table(rows: list[dict], datasets: list[str], pairings: list[str]) -> str:
    """Rows = datasets, columns = pairings (C2ST; several seeds comma-separated), then the
    prior's and the data-vs-data floor."""
    lines = [
        "| data | " + " | ".join(pairings) + " | prior | data vs data (floor) |",
        "|---|" + "---|" * (len(pairings) + 2),
    ]
    for d in datasets:
        cells, ref = [], None
        for p in pairings:
            got = [r for r in rows if r["dataset"] == d and r["pairing"] == p]
            text = [f"{r['c2st']:.3f}" if "failed" not in r else "failed" for r in got]
            cells.append(", ".join(text) or "–")
            ref = next((r for r in got if "failed" not in r), ref)
        prior = f"{ref['c2st_prior']:.3f}" if ref else "–"
        floor = f"{ref['c2st_floor']:.3f}" if ref else "–"
        lines.append(f"| {d} | " + " | ".join(cells) + f" | {prior} | {floor} |")
    return "\n".join(lines)


def mode_width(row: dict) -> float | None:
    """For a mixture: the RMS offset per coordinate of the cell's samples (`eval/samples.npz`)
    from their nearest mode, within 4 mode std of it, over the same of the data (None for
    other datasets)."""
    import jax
    import numpy as np

    from fdrl_jax.data.toy import TOY_MODE_STD, TOY_MODES, TOY_SAMPLERS

    name = row["dataset"]
    if name not in TOY_MODES:
        return None
    modes, std = TOY_MODES[name](), TOY_MODE_STD[name]

    def width(x):
        d = np.linalg.norm(x[:, None, :] - modes[None], axis=-1)
        near = d.min(1) <= 4 * std
        off = (x - modes[d.argmin(1)])[near]
        return float(np.sqrt(np.mean(off**2)))

    x = np.load(os.path.join(row["workdir"], "eval", "samples.npz"))["samples"]
    data = np.asarray(TOY_SAMPLERS[name](jax.random.PRNGKey(0), len(x)))
    return width(x) / width(data)


def full_table(rows: list[dict]) -> str:
    lines = [
        "| data | pairing | seed | C2ST model | C2ST prior | C2ST data (floor) | precision "
        "| recall | modes | mode width / data's | energy / prior's | steps | train wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "failed" in r:
            lines.append(
                f"| {r['dataset']} | {r['pairing']} | {r['seed']} | failed: {r['failed']} "
                "| | | | | | | | | |"
            )
            continue
        modes = f"{r['modes']}/{r['num_modes']}" if r["modes"] is not None else "–"
        width = mode_width(r)
        width = "–" if width is None else f"{width:.2f}"
        lines.append(
            f"| {r['dataset']} | {r['pairing']} | {r['seed']} | {r['c2st']:.3f} | "
            f"{r['c2st_prior']:.3f} | {r['c2st_floor']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {modes} | {width} | {100 * r['ratio']:.2f}% | {r['step']} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def figure(rows: list[dict], datasets: list[str], pairings: list[str], out: str, path: str) -> None:
    """One row per dataset: the data, then each pairing's samples (first seed), C2ST in the
    title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(
        len(datasets),
        len(pairings) + 1,
        figsize=(2 * (len(pairings) + 1), 2 * len(datasets)),
        squeeze=False,
    )
    for i, d in enumerate(datasets):
        got = {r["pairing"]: r for r in rows if r["dataset"] == d and "failed" not in r}
        panels = [("data", None)] + [(p, got.get(p)) for p in pairings]
        for ax, (name, r) in zip(axes[i], panels, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-2, 2)
            ax.set_ylim(-2, 2)
            ax.set_aspect("equal")
            if name == "data":
                x = _data_points(d, out, 2000)
                ax.scatter(x[:, 0], x[:, 1], s=0.3, c="0.3")
                ax.set_ylabel(d, fontsize=8)
                ax.set_title("data" if i == 0 else "", fontsize=8)
                continue
            if r is None:
                ax.set_title(f"{name}: not run" if i == 0 else "not run", fontsize=8)
                continue
            x = np.load(os.path.join(r["workdir"], "eval", "samples.npz"))["samples"]
            ax.scatter(x[:, 0], x[:, 1], s=0.3, c="tab:blue")
            ax.set_title(f"{name}: {r['c2st']:.3f}" if i == 0 else f"{r['c2st']:.3f}", fontsize=8)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=60)
    plt.close(fig)


def _data_points(dataset: str, out: str, n: int):
    import jax
    import numpy as np

    from fdrl_jax.data.toy import TOY_SAMPLERS

    if dataset in TOYS:
        return np.asarray(TOY_SAMPLERS[dataset](jax.random.PRNGKey(0), n))
    return np.load(os.path.join(out, "shapes", f"{dataset}.npy"))[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/toy_table")
    ap.add_argument("--jobs", type=int, default=1, help="cells trained at once")
    ap.add_argument("--arg", default="", help="extra config argument, e.g. paper")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--pairings", default=",".join(PAIRINGS))
    ap.add_argument("--seeds", default="0", help="training seeds (config.seed), comma-separated")
    ap.add_argument("--figure", default="", help="write every cell's samples to this PNG")
    ap.add_argument(
        "--reuse",
        action="store_const",
        const="reuse",
        default="",
        help="take the cells already run in --out (their cell.json) instead of rerunning them",
    )
    ap.add_argument(
        "--report",
        dest="reuse",
        action="store_const",
        const="report",
        help="train nothing: print the cells already run in --out",
    )
    args, extra = ap.parse_known_args()
    extra = [e for e in extra if e != "--"]
    datasets, pairings = args.datasets.split(","), args.pairings.split(",")
    unknown = sorted(set(datasets) - set(DATASETS))
    if unknown:
        ap.error(f"unknown datasets {unknown}; choose from {DATASETS}")
    os.makedirs(args.out, exist_ok=True)
    if args.reuse != "report" and any(d in toy_shapes.SHAPES for d in datasets):
        toy_shapes.write_shapes(os.path.join(args.out, "shapes"))
    seeds = [int(s) for s in args.seeds.split(",")]
    cells = [(d, p, s) for d in datasets for p in pairings for s in seeds]
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda c: run_cell(args.out, *c, args.arg, extra, args.reuse), cells))
    rows = [r for r in rows if r is not None]
    if args.reuse != "report":
        with open(os.path.join(args.out, "table.json"), "w") as f:
            json.dump(rows, f, indent=2)
    print(f"C2ST, model vs data (training seeds {args.seeds}; {EVAL_SEEDS}):\n")
    print(c2st_table(rows, datasets, pairings))
    print()
    print(full_table(rows))
    if args.figure:
        figure(rows, datasets, pairings, args.out, args.figure)
        print(f"\nsamples: {args.figure}")


if __name__ == "__main__":
    main()
