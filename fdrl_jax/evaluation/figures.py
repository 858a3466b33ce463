"""The paper's sample figures as PNG grids: flow-process strips (Fig. 8), prior-space
interpolation (Fig. 9), prior (DDP) samples (Fig. 11), nearest training images of samples in
pixel and feature space (Fig. 12/13) and translation pairs. Pure array functions return the
grids, which `run/plotting.py` writes."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax.algorithms import clip_images
from fdrl_jax.data import to_uint8


def make_grid(images: np.ndarray, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (rows·(H+pad)+pad, ncol·(W+pad)+pad, C) mosaic."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    ncol = ncol or int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, q = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + q * (w + pad) :][:, :w] = im
    return grid


def strip_grid(frames: np.ndarray) -> np.ndarray:
    """(T, N, H, W, C) trajectory frames in [-1, 1] -> a grid with one row per sample and one
    column per recorded step."""
    t, n = frames.shape[:2]
    rows = np.swapaxes(np.asarray(frames), 0, 1).reshape(t * n, *frames.shape[2:])
    return make_grid(to_uint8(rows), ncol=t)


def interpolation_starts(prior, key: jax.Array, num_pairs: int, num_points: int, clip: bool):
    """(num_pairs · num_points) prior points: each row goes from one prior draw a to another b
    along μ + cos(θ)(a − μ) + sin(θ)(b − μ), θ ∈ [0, π/2], which keeps a Gaussian prior's
    marginal (a straight line would shrink the middle towards μ)."""
    k_a, k_b = jax.random.split(key)
    a, b = prior.sample(k_a, num_pairs), prior.sample(k_b, num_pairs)
    mean = getattr(prior, "mean", None)
    mean = jnp.zeros_like(a[0]) if mean is None else jnp.reshape(mean, a.shape[1:])
    theta = jnp.linspace(0.0, math.pi / 2, num_points)
    cos = jnp.cos(theta).reshape(1, num_points, *([1] * (a.ndim - 1)))
    sin = jnp.sin(theta).reshape(1, num_points, *([1] * (a.ndim - 1)))
    x = mean + cos * (a - mean)[:, None] + sin * (b - mean)[:, None]
    x = x.reshape(num_pairs * num_points, *a.shape[1:])
    return clip_images(x) if clip else x


def nearest_neighbours(
    queries: np.ndarray, bank: np.ndarray, k: int, embed: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Indices (Q, k) of the k nearest rows of `bank` to each query, by L2 distance between
    `embed`-ed vectors (identity on flattened pixels, or a feature network)."""
    q = np.asarray(embed(queries), np.float64).reshape(len(queries), -1)
    dists = []
    for i in range(0, len(bank), 2000):  # bounded memory for large banks
        b = np.asarray(embed(bank[i : i + 2000]), np.float64).reshape(-1, q.shape[1])
        dists.append((q**2).sum(1)[:, None] - 2 * q @ b.T + (b**2).sum(1)[None])
    return np.argsort(np.concatenate(dists, axis=1), axis=1)[:, :k]


def neighbours_grid(queries: np.ndarray, bank: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows: a sample, then its nearest training images (the figure's layout)."""
    rows = [np.concatenate([queries[i : i + 1], bank[idx[i]]]) for i in range(len(queries))]
    return make_grid(to_uint8(np.concatenate(rows)), ncol=idx.shape[1] + 1)


def pairs_grid(before: np.ndarray, after: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Rows of `ncol` images (translation sources), each followed by the row of their
    outputs; the last pair of rows is padded with blank (white) images."""
    rows = []
    for i in range(0, len(before), ncol):
        b, a = before[i : i + ncol], after[i : i + ncol]
        if len(b) < ncol:
            pad = np.ones((ncol - len(b), *b.shape[1:]), b.dtype)
            b, a = np.concatenate([b, pad]), np.concatenate([a, pad])
        rows += [b, a]
    return np.concatenate(rows)
