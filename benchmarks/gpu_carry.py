"""Pack what `benchmarks/gpu_check.sh` needs on a machine that can fetch nothing, under a size
cap (64 MiB for the whole working tree where the check runs).

    python benchmarks/gpu_carry.py [--data=data/cifar10-jpeg.npz] [--images=16000]
        [--weights=<FID Inception weights: .whl, .pt, .pth or .npz>] [--out=.gpu_carry]
        [--cap_mib=64] [--wheels=ml-collections==1.1.0]

Writes into --out (git-ignored):
- `cifar10-train.npz`: the first --images training images of the CIFAR-10 JPEG archive, in
  the same layout (`train_jpeg`, `train_offsets`, `train_labels`, `classes`): the check's
  training data and its FID reference statistics;
- `inception-fp16.npz`: the FID Inception weights in float16 (44 MB instead of 87 MB; the
  features move by ~3e-3 of their scale, so its FIDs compare with FIDs of the same file);
- `wheels/`: the packages the GPU machine's image lacks (`pip download --no-deps`).
Then it adds up the tracked files of the repository and everything written, and fails if the
total exceeds --cap_mib.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mib(path: str) -> float:
    if os.path.isfile(path):
        return os.path.getsize(path) / 2**20
    return sum(_mib(os.path.join(path, n)) for n in os.listdir(path))


def subset(src: str, dst: str, n: int) -> None:
    with np.load(src) as z:
        offsets = z["train_offsets"][: n + 1]
        np.savez(
            dst,
            train_jpeg=z["train_jpeg"][: offsets[-1]],
            train_offsets=offsets,
            train_labels=z["train_labels"][:n],
            classes=z["classes"],
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=os.path.join(ROOT, "data", "cifar10-jpeg.npz"))
    p.add_argument("--images", type=int, default=16_000)
    p.add_argument("--weights", default="", help="default: $FDRL_FID_WEIGHTS or the cache")
    p.add_argument("--out", default=os.path.join(ROOT, ".gpu_carry"))
    p.add_argument("--cap_mib", type=float, default=64)
    p.add_argument("--wheels", default="ml-collections==1.1.0")
    a = p.parse_args()
    from fdrl_jax.evaluation import inception_weights

    os.makedirs(os.path.join(a.out, "wheels"), exist_ok=True)
    subset(a.data, os.path.join(a.out, "cifar10-train.npz"), a.images)
    variables = inception_weights.resolve_inception_weights(a.weights or None)
    inception_weights.save_flax_weights(
        variables, os.path.join(a.out, "inception-fp16.npz"), np.float16
    )
    for spec in filter(None, a.wheels.split(",")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "-d", os.path.join(a.out, "wheels"), spec],
            check=True,
        )  # fmt: skip
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    repo = sum(_mib(os.path.join(ROOT, f.decode())) for f in tracked if f)
    carried = _mib(a.out)
    for name in sorted(os.listdir(a.out)):
        print(f"  {name}: {_mib(os.path.join(a.out, name)):.1f} MiB")
    total = repo + carried
    print(f"tracked files {repo:.1f} MiB + {a.out} {carried:.1f} MiB = {total:.1f} MiB")
    if total > a.cap_mib:
        raise SystemExit(f"over the {a.cap_mib:g} MiB cap: lower --images")


if __name__ == "__main__":
    main()
