"""How well an unpaired translation kept each image's content (paper Sec. 6.5)."""

from __future__ import annotations

import numpy as np


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
