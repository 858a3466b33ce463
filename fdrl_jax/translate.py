"""Unpaired image-to-image translation (paper Sec. 6.5): flow source images to the target.

Training is Algorithm 1 unchanged, with the prior replaced by source-domain images
(`prior.name = "dataset"`, drawn with the source's flips and dequantisation noise, not clamped)
and the data by the target domain. Translating is the flow itself: the source images
(preprocessed, randomly flipped if the source section flips, without dequantisation noise, as
the reference does at test time) flow `translate.num_steps` steps (the paper: K = 100 in
training, 110 at test time) with the EMA params.

`--mode=translate` is `run/translation.py`; `data/pairs.py` writes offline pairs of domains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import flow_lib

Array = jax.Array


def translate(
    potential: flow_lib.Potential,
    x0: Array,
    key: Array,
    num_steps: int | Array,
    eta: float,
    nu: float,
    clip_output: bool = True,
) -> Array:
    """Source images x0 (B, H, W, C) in [-1, 1] flowed `num_steps` steps (pure; the count may
    be a run-time value)."""
    x = flow_lib.flow(potential, x0, key, num_steps, eta, nu)
    return jnp.clip(x, -1.0, 1.0) if clip_output else x


def prepare_source(images: Array, key: Array, flip: bool) -> Array:
    """uint8 source images -> [-1, 1], each randomly mirrored when `flip`: the reference's
    test-time sources (no dequantisation noise, no clamp; its training draws are dequantised
    and not clamped either, see `prior.clip` in the translation configs)."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    if flip:
        mirror = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1, 1))
        x = jnp.where(mirror, x[:, :, ::-1, :], x)
    return x


def content_kept(source: np.ndarray, translated: np.ndarray, seed: int = 0) -> float:
    """Fraction of images closer (pixel L2) to their own source than to another random source
    (each image paired with a different one): 1.0 when translation keeps every image's
    content, about 0.5 when outputs are unrelated to their inputs."""
    n = len(source)
    if n < 2:
        return float("nan")
    s = np.asarray(source, np.float64).reshape(n, -1)
    t = np.asarray(translated, np.float64).reshape(n, -1)
    other = (np.arange(n) + np.random.default_rng(seed).integers(1, n, n)) % n
    own = np.linalg.norm(t - s, axis=1)
    rand = np.linalg.norm(t - s[other], axis=1)
    return float(np.mean(own < rand))


def pairs_grid(before: np.ndarray, after: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Rows of `ncol` sources, each followed by the row of their translations."""
    rows = []
    for i in range(0, len(before), ncol):
        b, a = before[i : i + ncol], after[i : i + ncol]
        if len(b) < ncol:  # pad the last pair of rows with blank (white) images
            pad = np.ones((ncol - len(b), *b.shape[1:]), b.dtype)
            b, a = np.concatenate([b, pad]), np.concatenate([a, pad])
        rows += [b, a]
    return np.concatenate(rows)
