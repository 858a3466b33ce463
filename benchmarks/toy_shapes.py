"""2D point clouds that no shipped setting was chosen on, for `benchmarks/toy_quality.py`.

    python benchmarks/toy_shapes.py --out=data/shapes [--n=100000] [--seed=0]

Writes one (n, 2) float32 `.npy` per shape, at the toys' scale (within about ±1.7, like the
swiss roll and the mixtures, which the N(0, I) prior covers). Train on one with
`--config.data.name=points --config.data.path=data/shapes/<shape>.npy`. The shapes:

- checkerboard: uniform on the 8 dark squares of a 4×4 board over [-1.6, 1.6]² (sharp edges,
  corners that touch);
- moons: two interleaved half circles of radius 1 (sklearn's make_moons layout), Gaussian
  noise 0.05, centred;
- rings: three concentric circles of radius 0.5, 1 and 1.5, as many points per unit length on
  each, radial noise 0.04;
- spirals: two interleaved arms, 1.75 turns each, out to radius 1.6, noise 0.04.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
    cell = 0.8
    dark = [(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0]
    pick = rng.integers(0, len(dark), n)
    corner = np.asarray(dark, np.float64)[pick] * cell - 1.6
    return corner + rng.uniform(0.0, cell, (n, 2))


def moons(rng: np.random.Generator, n: int) -> np.ndarray:
    upper = rng.random(n) < 0.5
    t = rng.uniform(0.0, np.pi, n)
    x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], axis=1)
    return pts + 0.05 * rng.standard_normal((n, 2))


def rings(rng: np.random.Generator, n: int) -> np.ndarray:
    radii = np.array([0.5, 1.0, 1.5])
    which = rng.choice(3, n, p=radii / radii.sum())  # same density along every ring
    angle = rng.uniform(0.0, 2 * np.pi, n)
    radius = radii[which] + 0.04 * rng.standard_normal(n)
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def spirals(rng: np.random.Generator, n: int) -> np.ndarray:
    turns = 1.75
    u = np.sqrt(rng.random(n))  # uniform density along the arm's length (about)
    angle = 0.3 + u * turns * 2 * np.pi
    radius = 1.6 * u
    arm = np.where(rng.random(n) < 0.5, 0.0, np.pi)
    pts = np.stack([radius * np.cos(angle + arm), radius * np.sin(angle + arm)], axis=1)
    return pts + 0.04 * rng.standard_normal((n, 2))


SHAPES = {"checkerboard": checkerboard, "moons": moons, "rings": rings, "spirals": spirals}


def write_shapes(out: str, n: int = 100_000, seed: int = 0) -> dict[str, str]:
    """Every shape as `out/<shape>.npy`; returns {shape: path}."""
    os.makedirs(out, exist_ok=True)
    paths = {}
    for i, (name, make) in enumerate(SHAPES.items()):
        pts = make(np.random.default_rng([seed, i]), n).astype(np.float32)
        paths[name] = os.path.join(out, f"{name}.npy")
        np.save(paths[name], pts)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="data/shapes")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name, path in write_shapes(args.out, args.n, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
