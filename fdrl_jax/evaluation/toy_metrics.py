"""Sample-quality metrics for low-dimensional data.

Distances between the laws (energy distance, sliced 2-Wasserstein) miss local failures: a
model with its mass in streaks along the data, or two rings merged into one band, can sit
within a few percent of the data's energy distance. The classifier two-sample test sees them
(a k-NN classifier separates samples that lie where the data does not), and the k-NN support
metrics say which way it fails: `precision` (samples inside the data's support) and `recall`
(data inside the samples' support).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _mean_pairwise_distance(x: Array, y: Array, exclude_diagonal: bool) -> Array:
    # Row by row (lax.map) so memory stays O(N) for large N.
    def row(xi):
        return jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(xi - y), axis=-1), 0.0))

    d = jax.lax.map(row, x, batch_size=256)
    n, m = d.shape
    if exclude_diagonal:
        return jnp.sum(d) / (n * (m - 1))
    return jnp.mean(d)


@jax.jit
def energy_distance(x: Array, y: Array) -> Array:
    """E = 2 E|X−Y| − E|X−X'| − E|Y−Y'| (U-statistics within sets: ~0 for equal laws)."""
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    y = y.reshape(y.shape[0], -1).astype(jnp.float32)
    return (
        2 * _mean_pairwise_distance(x, y, False)
        - _mean_pairwise_distance(x, x, True)
        - _mean_pairwise_distance(y, y, True)
    )


def sliced_wasserstein2(x: Array, y: Array, key: Array, num_projections: int = 512) -> Array:
    """sqrt(E_θ W2²(θᵀX, θᵀY)) over random unit directions θ; x and y of equal size."""
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    y = y.reshape(y.shape[0], -1).astype(jnp.float32)
    if x.shape != y.shape:
        raise ValueError(f"sliced W2 needs equal sample counts, got {x.shape} and {y.shape}")
    theta = jax.random.normal(key, (x.shape[1], num_projections))
    theta = theta / jnp.linalg.norm(theta, axis=0, keepdims=True)
    px, py = jnp.sort(x @ theta, axis=0), jnp.sort(y @ theta, axis=0)
    return jnp.sqrt(jnp.mean(jnp.square(px - py)))


def _flat(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], -1)


def c2st(x, y, neighbors: int = 15, folds: int = 5, seed: int = 0) -> float:
    """Classifier two-sample test: the cross-validated accuracy (`folds`-fold) of a
    `neighbors`-nearest-neighbour classifier telling the rows of x from those of y, equal
    counts (the larger set is cut). 0.5: indistinguishable; 1.0: fully separable."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score  # off start-up
    from sklearn.neighbors import KNeighborsClassifier

    n = min(len(x), len(y))
    if n < folds:
        raise ValueError(f"c2st needs at least {folds} samples per set; got {n}")
    features = np.concatenate([_flat(x)[:n], _flat(y)[:n]])
    labels = np.repeat([0, 1], n)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(neighbors), features, labels, cv=cv)
    return float(np.mean(scores))


def support(samples, data, k: int = 3) -> dict[str, float]:
    """k-NN precision and recall (Kynkäänniemi et al. 2019): each point's ball reaches its
    k-th nearest neighbour within its own set; `precision` is the fraction of samples inside
    some data ball, `recall` the fraction of data points inside some sample ball."""
    from sklearn.neighbors import NearestNeighbors  # scikit-learn: off the start-up path

    samples, data = _flat(samples), _flat(data)

    def inside(queries, points):
        nn = NearestNeighbors(n_neighbors=k + 1).fit(points)
        radius = nn.kneighbors(points)[0][:, k]  # column 0 is the point itself
        dist, idx = nn.kneighbors(queries, n_neighbors=k + 1)
        return float(np.mean(np.any(dist <= radius[idx], axis=1)))

    return {"precision": inside(samples, data), "recall": inside(data, samples)}


def mode_coverage(x, modes, std: float, radius: float = 4.0) -> dict:
    """For a mixture with `modes` (M, D) of width `std`: the fraction of samples within
    `radius`·std of a mode, each mode's share of all samples, and how many modes hold at
    least a quarter of their fair share 1/M."""
    x, modes = _flat(x), np.asarray(modes, np.float64)
    d = np.linalg.norm(x[:, None, :] - modes[None], axis=-1)
    near = d.min(1) <= radius * std
    shares = np.bincount(d.argmin(1)[near], minlength=len(modes)) / len(x)
    return {
        "in_mode_fraction": float(near.mean()),
        "mode_shares": shares.round(4).tolist(),
        "modes_covered": int(np.sum(shares >= 0.25 / len(modes))),
        "num_modes": len(modes),
    }


def compare(x: Array, y: Array, key: Array, num_projections: int) -> dict[str, float]:
    return {
        "energy_distance": float(energy_distance(x, y)),
        "sliced_w2": float(sliced_wasserstein2(x, y, key, num_projections)),
    }
