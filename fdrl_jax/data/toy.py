"""The paper's 2D toy distributions (docs/settings.md) and user point clouds, as jittable samplers.

Each source has `sample(key, n) -> (n, D)` (pure, usable inside the jitted train step, so the
data draw is deterministic for a step's key) and `shape` (the event shape).
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from fdrl_jax.errors import DataError, MissingFileError

Array = jax.Array


def swissroll(key: Array, n: int) -> Array:
    """sklearn `make_swiss_roll(noise=0.25)[:, [0, 2]] / 7.5`, written in JAX."""
    k_t, k_noise = jax.random.split(key)
    t = 1.5 * math.pi * (1.0 + 2.0 * jax.random.uniform(k_t, (n,)))
    x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], axis=1)
    return (x + 0.25 * jax.random.normal(k_noise, (n, 2))) / 7.5


def _mixture(key: Array, n: int, centres: Array, std: float, scale: float) -> Array:
    k_c, k_noise = jax.random.split(key)
    idx = jax.random.randint(k_c, (n,), 0, centres.shape[0])
    return (centres[idx] + std * jax.random.normal(k_noise, (n, 2))) / scale


def gaussians8(key: Array, n: int) -> Array:
    """8 centres on a circle of radius 2, std 0.02, divided by 1.414."""
    angles = jnp.arange(8) * (2 * math.pi / 8)
    centres = 2.0 * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    return _mixture(key, n, centres, 0.02, 1.414)


def gaussians25(key: Array, n: int) -> Array:
    """5×5 grid at 2·{-2..2}, std 0.05, divided by 2.828."""
    g = 2.0 * jnp.arange(-2, 3, dtype=jnp.float32)
    centres = jnp.stack(jnp.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    return _mixture(key, n, centres, 0.05, 2.828)


def chasm_target(key: Array, n: int) -> Array:
    """The density-chasm target p = N(6·1, 0.1 I) in 2D (the prior is N(0, 0.1 I))."""
    return 6.0 + math.sqrt(0.1) * jax.random.normal(key, (n, 2))


TOY_SAMPLERS = {
    "swissroll": swissroll,
    "8gaussians": gaussians8,
    "25gaussians": gaussians25,
    "chasm": chasm_target,
}

# Mode centres (in data coordinates) of the mixtures, for mode-coverage metrics.
TOY_MODES = {
    "8gaussians": lambda: np.asarray(
        2.0
        * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
        / 1.414
    ),
    "25gaussians": lambda: (
        np.stack(
            np.meshgrid(2.0 * np.arange(-2, 3), 2.0 * np.arange(-2, 3), indexing="ij"), -1
        ).reshape(-1, 2)
        / 2.828
    ),
}


# Each mode's standard deviation in data coordinates.
TOY_MODE_STD = {"8gaussians": 0.02 / 1.414, "25gaussians": 0.05 / 2.828}


@struct.dataclass
class ToyData:
    """An infinite 2D toy distribution."""

    name: str = struct.field(pytree_node=False)
    shape: tuple[int, ...] = struct.field(pytree_node=False, default=(2,))

    def sample(self, key: Array, n: int) -> Array:
        return TOY_SAMPLERS[self.name](key, n)


@struct.dataclass
class PointCloud:
    """A finite set of points (N, D); batches are drawn uniformly with replacement."""

    points: Array
    shape: tuple[int, ...] = struct.field(pytree_node=False)

    def sample(self, key: Array, n: int) -> Array:
        idx = jax.random.randint(key, (n,), 0, self.points.shape[0])
        return self.points[idx]


def load_point_cloud(path: str, key: str | None = None) -> PointCloud:
    """A (N, D) float point cloud from `.npy`, or from `.npz` (array `key`, or its only array)."""
    if not path:
        raise DataError("dataset 'points' needs a file: set --config.data.path=/path/to/x.npy")
    if not os.path.exists(path):
        raise MissingFileError(
            f"Data file {path!r} does not exist; set --config.data.path to "
            "an existing .npy or .npz file of shape (N, D)."
        )
    if path.endswith(".npz"):
        with np.load(path) as z:
            names = list(z.keys())
            if key is None:
                if len(names) != 1:
                    raise DataError(
                        f"{path} holds arrays {names}; choose one with --config.data.key=NAME"
                    )
                key = names[0]
            if key not in names:
                raise DataError(f"{path} has no array {key!r}; it holds {names}")
            x = z[key]
    elif path.endswith(".npy"):
        x = np.load(path)
    else:
        raise DataError(f"Data file {path!r} must end in .npy or .npz")
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"{path}: a point cloud must have shape (N>=2, D); got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
        raise DataError(f"{path}: the points must be finite numbers (dtype {x.dtype})")
    x = np.asarray(x, np.float32)
    return PointCloud(points=jnp.asarray(x), shape=(x.shape[1],))
