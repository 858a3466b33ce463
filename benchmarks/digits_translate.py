"""Unpaired translation on an offline digits pair, on a CPU.

Domain A: half of scikit-learn's 8×8 digits as they are; domain B: the other half with strokes
one pixel wider (`pairs.digits_pair`, 100 of each held out). FDRL is trained with Algorithm
1 from the dataset prior (A) to B (`configs/digits_translate.py`), then the held-out A images
are translated. Reported:
- `target_fraction`: share of translated images a separately trained domain classifier
  (logistic regression, train A vs train B) calls B; also for the untranslated test A and
  the real test B (its accuracy);
- `content_kept`: share of translated images closer (pixel L2) to their own source than to
  a random other source;
- `digit_kept`: share whose digit a classifier trained on the bold digits (train B) reads
  as the source's digit (does the translation keep *which* digit it is?).

    python benchmarks/digits_translate.py --workdir=runs/digits_translate

Prints one JSON object and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from fdrl_jax import configlib, run
from fdrl_jax.data import pairs


def _pixels(x: np.ndarray) -> np.ndarray:
    """uint8 images or [-1, 1] floats -> (N, 64) floats in [-1, 1]."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float64) / 127.5 - 1.0
    return np.clip(x.reshape(len(x), -1), -1, 1)


def _load(root: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(os.path.join(root, f"{name}.npz")) as z:
        return z["images"], z["class_labels"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="configs/digits_translate.py")
    p.add_argument("--workdir", default="runs/digits_translate")
    p.add_argument("--root", default="data/digits_pair", help="where the pair's .npz files go")
    p.add_argument("--transform", default="bold", choices=sorted(pairs.PAIR_TRANSFORMS))
    p.add_argument("--train-steps", type=int, default=None, help="default: the config's")
    p.add_argument("--translate-steps", default="55", help="comma-separated step counts")
    args = p.parse_args()

    t0 = time.time()
    if not os.path.exists(os.path.join(args.root, "testB.npz")):
        pairs.digits_pair(args.root, args.transform)
    config = configlib.load_config(args.config)
    config.data.path = os.path.join(args.root, "trainB.npz")
    config.prior.source.path = os.path.join(args.root, "trainA.npz")
    config.translate.input = os.path.join(args.root, "testA.npz")
    if args.train_steps is not None:
        config.train.num_steps = args.train_steps
    run.train(config, args.workdir)
    train_seconds = time.time() - t0

    (xa, _), (xb, yb) = _load(args.root, "trainA"), _load(args.root, "trainB")
    (ta, tya), (tb, _) = _load(args.root, "testA"), _load(args.root, "testB")
    domain = LogisticRegression(max_iter=5000).fit(
        np.concatenate([_pixels(xa), _pixels(xb)]), np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    )
    digit_b = LogisticRegression(max_iter=5000).fit(_pixels(xb), yb)  # reads bold digits

    def scores(x: np.ndarray) -> dict:
        return {
            "target_fraction": float(np.mean(domain.predict(_pixels(x)) == 1)),
            "digit_kept": float(np.mean(digit_b.predict(_pixels(x)) == tya)),
        }

    result = {
        "config": args.config,
        "workdir": args.workdir,
        "transform": args.transform,
        "train_steps": config.train.num_steps,
        "train_seconds_incl_restore": round(train_seconds, 1),
        "test_a_untranslated": {**scores(ta), "content_kept": 1.0},
        "test_b_real": {"target_fraction": float(np.mean(domain.predict(_pixels(tb)) == 1))},
        "translated": {},
    }
    for steps in [int(s) for s in args.translate_steps.split(",")]:
        config.translate.num_steps = steps
        r = run.translate(config, args.workdir)
        with np.load(os.path.join(args.workdir, "eval", "translate", "translated.npz")) as z:
            out = z["translated"]
        result["translated"][steps] = {
            **scores(out),
            "content_kept": r["content_kept"],
            "mean_l2_moved": r["mean_l2_moved"],
        }
    result["wall_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(result))
    print(
        "\n| images (100 held-out A) | domain classifier: target (B) | closer to own source "
        "| digit kept (bold-digit classifier) |"
    )
    print("|---|---|---|---|")
    a = result["test_a_untranslated"]
    print(f"| untranslated | {a['target_fraction']:.2f} | 1.00 | {a['digit_kept']:.2f} |")
    for steps, r in result["translated"].items():
        print(
            f"| translated, {steps} steps | {r['target_fraction']:.2f} | {r['content_kept']:.2f} "
            f"| {r['digit_kept']:.2f} |"
        )
    b = result["test_b_real"]["target_fraction"]
    print(f"| real test B (domain classifier accuracy) | {b:.2f} | | |")


if __name__ == "__main__":
    main()
