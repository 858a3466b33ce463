"""FID between CIFAR-10's train and test splits with the Flax FID Inception (real weights).

    python benchmarks/fid_cifar_splits.py [--n_train=50000] [--n_test=10000] [--batch_size=50]
        [--data=data/cifar10-jpeg.npz] [--weights=PATH] [--save_stats=DIR]

A sanity figure for the FID pipeline: two samples of one distribution, so the FID is small and
reflects sampling noise (and small-N bias: the same split pair scores higher with fewer
images). Subsets are random (fixed --seed), the test subset from the test split. Weights come
from inception.resolve_inception_weights (--weights, $FDRL_FID_WEIGHTS or
.cache/fid-helper/). Not run by CI.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections.abc import Iterator

import jax.numpy as jnp
import numpy as np
from PIL import Image

from fdrl_jax.evaluation import features, fid

DEFAULT_DATA = "data/cifar10-jpeg.npz"  # copy the file here (data/ is git-ignored) or pass --data


def decoded_batches(
    jpeg: np.ndarray, offsets: np.ndarray, indices: np.ndarray, batch_size: int
) -> Iterator[np.ndarray]:
    """uint8 (B, 32, 32, 3) batches decoded on the fly, so memory stays one batch."""
    for lo in range(0, len(indices), batch_size):
        yield np.stack(
            [
                np.asarray(
                    Image.open(io.BytesIO(jpeg[offsets[i] : offsets[i + 1]].tobytes())).convert(
                        "RGB"
                    )
                )
                for i in indices[lo : lo + batch_size]
            ]
        )


def _with_progress(
    batches: Iterator[np.ndarray], name: str, n: int, batch_size: int, every: int = 20
) -> Iterator[np.ndarray]:
    t0 = time.time()
    for k, batch in enumerate(batches):
        if k and k % every == 0:
            done = k * batch_size
            rate = done / (time.time() - t0)
            print(
                f"  {name}: {done}/{n} at {rate:.1f} img/s, ~{(n - done) / rate:.0f}s left",
                flush=True,
            )
        yield batch


def split_statistics(
    z, split: str, n: int, seed: int, feature_fn, batch_size: int
) -> tuple[fid.Statistics, float]:
    jpeg, offsets = z[f"{split}_jpeg"], z[f"{split}_offsets"]
    total = len(offsets) - 1
    if n > total:
        raise ValueError(f"--n_{split}={n} exceeds the {total} images of the split")
    idx = np.sort(np.random.default_rng(seed).permutation(total)[:n])
    t0 = time.time()
    batches = _with_progress(decoded_batches(jpeg, offsets, idx, batch_size), split, n, batch_size)
    stats = fid.compute_statistics(batches, feature_fn, batch_size)
    return stats, time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--n_train", type=int, default=50_000)
    p.add_argument("--n_test", type=int, default=10_000)
    p.add_argument("--batch_size", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default=None, help=".whl/.pt/.pth/.npz; default: see module doc")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--sqrtm", action="store_true", help="also report the scipy sqrtm FID")
    p.add_argument("--save_stats", default=None, help="directory for train/test .npz statistics")
    args = p.parse_args()

    t0 = time.time()
    feature_fn = features.make_inception_feature_fn(
        weights_path=args.weights, dtype=jnp.dtype(args.dtype)
    )
    with np.load(args.data) as z:
        train, t_train = split_statistics(
            z, "train", args.n_train, args.seed, feature_fn, args.batch_size
        )
        print(f"train: {args.n_train} images in {t_train:.0f}s", flush=True)
        test, t_test = split_statistics(
            z, "test", args.n_test, args.seed + 1, feature_fn, args.batch_size
        )
        print(f"test: {args.n_test} images in {t_test:.0f}s", flush=True)
    if args.save_stats:
        for name, s in (("train", train), ("test", test)):
            fid.save_statistics(
                os.path.join(args.save_stats, f"cifar10_{name}_{getattr(args, 'n_' + name)}"), s
            )
    result = {
        "fid_train_vs_test": fid.fid_from_statistics(train, test),
        "n_train": args.n_train,
        "n_test": args.n_test,
        "dtype": args.dtype,
        "images_per_s": (args.n_train + args.n_test) / (t_train + t_test),
    }
    if args.sqrtm:  # pytorch-fid's recipe too; a minute or more at 2048-d on a small CPU
        result["fid_sqrtm"] = fid.fid_from_statistics(train, test, method="sqrtm")
    result["wall_s"] = time.time() - t0
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
