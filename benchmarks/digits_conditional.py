"""Class-conditional digits: does the composed flow sample the asked class?

Takes a trained unconditional digits run (`python -m fdrl_jax.main --config=configs/digits.py
--workdir=runs/digits`), trains two guiding classifiers on the digits (one with L2 PGD
adversarial training, one clean; skipped when their params exist) and an independent clean
judge (an MLP with another seed), then draws `--num-per-label` samples of each label for each
guide and φ and reports the fraction that two judges which never guided the flow (the
scikit-learn logistic regression of `evaluation/digits_metrics.py`, and the MLP) assign to the
asked label. Samples whose flow diverged count as wrong.

    python benchmarks/digits_conditional.py --workdir=runs/digits --phis=0,0.03,0.1,0.3

Prints one JSON object and markdown tables (per label at `--report-phi`, and the mean over
labels for every φ).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import classifier as clf
from fdrl_jax import conditional, configlib, run
from fdrl_jax.data import build_data
from fdrl_jax.data.images import to_unit_range
from fdrl_jax.evaluation.digits_metrics import digits_classifier, to_digit_pixels
from fdrl_jax.run import classifier_training, restore_for_inference


def train_or_load(config, path: str, *, eps: float, kind: str, seed: int, steps: int) -> dict:
    """A classifier's (apply_fn, params, info), trained on the digits unless `path` exists."""
    c = config.classifier
    with config.unlocked():
        c.name, c.seed, c.adv_eps, c.num_steps = kind, seed, eps, steps
        c.features = (32, 64) if kind == "cnn" else ()
        c.path = path
    info_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(path):
        run.classifier(config, os.path.dirname(path))
    apply_fn, params = classifier_training.load_classifier(c, path)
    with open(info_path) as f:
        info = json.load(f)
    return {"apply": apply_fn, "params": params, "info": info, "name": kind}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/digits.py")
    p.add_argument("--workdir", default="runs/digits")
    p.add_argument("--classifier-dir", default=None, help="default: <workdir>/classifiers")
    p.add_argument("--robust-eps", type=float, default=1.5, help="L2 PGD radius of the guide")
    p.add_argument("--classifier-steps", type=int, default=3000)
    p.add_argument("--phis", default="0,0.03,0.1,0.3")
    p.add_argument("--report-phi", type=float, default=0.1)
    p.add_argument("--num-per-label", type=int, default=200)
    p.add_argument("--steps", type=int, default=None, help="flow steps (default K + κ)")
    p.add_argument("--eta", type=float, default=None, help="flow η (default the config's)")
    p.add_argument("--seed", type=int, default=4)
    args = p.parse_args()

    t0 = time.time()
    config = configlib.load_config(args.config)
    if args.eta is not None:
        config.flow.eta = args.eta
    exp, state = restore_for_inference(config, args.workdir)
    out_dir = args.classifier_dir or os.path.join(args.workdir, "classifiers")
    steps = args.classifier_steps
    guides = {
        "robust": train_or_load(
            config, f"{out_dir}/robust.npz", eps=args.robust_eps, kind="cnn", seed=0, steps=steps
        ),
        "clean": train_or_load(
            config, f"{out_dir}/clean.npz", eps=0.0, kind="cnn", seed=0, steps=steps
        ),
    }
    judge_mlp = train_or_load(
        config, f"{out_dir}/judge_mlp.npz", eps=0.0, kind="mlp", seed=1, steps=steps
    )
    # The same held-out split as the classifiers (seed of the judge) to check the judges.
    data = build_data(config.data)
    _, held = clf.split_holdout(data, config.classifier.holdout, 1)
    xh, yh = np.asarray(to_unit_range(held.images)), np.asarray(held.labels)

    def judges(x: np.ndarray) -> dict[str, np.ndarray]:
        ok = np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
        x = np.nan_to_num(x)
        logits = judge_mlp["apply"](judge_mlp["params"], jnp.asarray(x))
        return {
            "logreg": np.where(ok, digits_classifier().predict(to_digit_pixels(x)), -1),
            "mlp": np.where(ok, np.asarray(jnp.argmax(logits, -1)), -1),
        }

    real = np.asarray(to_unit_range(data.images), np.float64).reshape(len(data), -1)

    def nearest_real(x: np.ndarray) -> np.ndarray:
        """Per finite sample, the pixel L2 distance to the nearest real digit (realism:
        adversarial patterns that fool the judges still sit far from every real digit)."""
        x = x.reshape(len(x), -1)
        x = np.clip(x[np.all(np.isfinite(x), axis=1)], -1, 1)  # diverged samples: left out
        d2 = (x**2).sum(1)[:, None] - 2 * x @ real.T + (real**2).sum(1)[None]
        return np.sqrt(np.maximum(d2.min(1), 0))

    d2 = (real**2).sum(1)[:, None] - 2 * real @ real.T + (real**2).sum(1)[None]
    np.fill_diagonal(d2, np.inf)
    result = {
        "real_digits_nn_l2": float(np.mean(np.sqrt(np.maximum(d2.min(1), 0)))),
        "config": args.config,
        "workdir": args.workdir,
        "step": int(state.step),
        "flow_steps": args.steps or config.flow.num_steps + config.flow.kappa,
        "eta": config.flow.eta,
        "pairing": f"{config.loss}-{config.divergence}",
        "num_per_label": args.num_per_label,
        "judges_heldout_accuracy": {k: float(np.mean(v == yh)) for k, v in judges(xh).items()},
        "classifiers": {k: g["info"] for k, g in {**guides, "judge_mlp": judge_mlp}.items()},
        "runs": [],
    }
    phis = [float(s) for s in args.phis.split(",")]
    key = jax.random.PRNGKey(args.seed)
    for name, g in guides.items():
        for phi in phis:
            fn = conditional.make_conditional_sample_fn(exp, g["apply"], phi, args.steps)
            run, nn_dists = {"guide": name, "phi": phi, "per_label": {}}, []
            for y in range(10):
                x = conditional.sample_label(
                    fn,
                    state.ema_variables,
                    g["params"],
                    jax.random.fold_in(key, y),
                    y,
                    args.num_per_label,
                    1000,
                )
                pred = judges(x)
                nn_dists.extend(nearest_real(x))
                run["per_label"][y] = {
                    "logreg": float(np.mean(pred["logreg"] == y)),
                    "mlp": float(np.mean(pred["mlp"] == y)),
                    "nonfinite": float(np.mean(~np.isfinite(x.reshape(len(x), -1)).any(1))),
                }
            run["nn_l2"] = float(np.mean(nn_dists))
            for j in ("logreg", "mlp"):
                v = [e[j] for e in run["per_label"].values()]
                run[f"mean_{j}"], run[f"min_{j}"] = float(np.mean(v)), float(np.min(v))
            result["runs"].append(run)
            print(
                f"guide={name} phi={phi}: mean logreg {run['mean_logreg']:.3f} (min "
                f"{run['min_logreg']:.3f}), mean mlp {run['mean_mlp']:.3f} "
                f"(min {run['min_mlp']:.3f}); nearest real digit {run['nn_l2']:.2f}",
                flush=True,
            )
    result["wall_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result))

    print(
        f"\nPer label at φ = {args.report_phi} (fraction judged as the asked label, "
        f"logistic regression / MLP judge):\n"
    )
    at = {r["guide"]: r for r in result["runs"] if r["phi"] == args.report_phi}
    names = list(at)
    print("| label | " + " | ".join(f"{n} guide" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for y in range(10):
        cells = [
            f"{at[n]['per_label'][y]['logreg']:.2f} / {at[n]['per_label'][y]['mlp']:.2f}"
            for n in names
        ]
        print(f"| {y} | " + " | ".join(cells) + " |")
    print(
        "| mean | "
        + " | ".join(f"{at[n]['mean_logreg']:.3f} / {at[n]['mean_mlp']:.3f}" for n in names)
        + " |"
    )
    print(
        "\nMean (min) over labels for every φ, logistic regression judge; mean L2 to the "
        f"nearest real digit (real digits to each other: {result['real_digits_nn_l2']:.2f}):\n"
    )
    print("| φ | " + " | ".join(f"{n} guide" for n in guides) + " |")
    print("|---|" + "---|" * len(guides))
    for phi in phis:
        cells = [
            f"{r['mean_logreg']:.3f} ({r['min_logreg']:.2f}); NN {r['nn_l2']:.2f}"
            for n in guides
            for r in result["runs"]
            if r["guide"] == n and r["phi"] == phi
        ]
        print(f"| {phi} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
