"""Sample-quality metrics for low-dimensional data.

Distances between the laws (energy distance, sliced 2-Wasserstein) miss local failures: a
model with its mass in streaks along the data, or two rings merged into one band, can sit
within a few percent of the data's energy distance. The classifier two-sample test sees them
(a k-NN classifier separates samples that lie where the data does not), and the k-NN support
metrics say which way it fails: `precision` (samples inside the data's support) and `recall`
(data inside the samples' support).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax.data.toy import TOY_MODE_STD, TOY_MODES

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
    from sklearn.model_selection import StratifiedKFold, cross_val_score
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
    from sklearn.neighbors import NearestNeighbors

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


def run_eval(config, workdir: str) -> dict:
    """`--mode=eval` for vector data: model, prior and a second data draw, each vs data."""
    from fdrl_jax import parallel, plotting, sampling
    from fdrl_jax.train import restore_for_inference

    exp, state = restore_for_inference(config, workdir)
    n, e = config.eval.num_samples, config.eval
    keys = jax.random.split(jax.random.PRNGKey(e.seed), 5)
    steps = config.flow.num_steps + config.flow.kappa
    sample_fn = sampling.make_sample_fn(exp, steps, mesh=parallel.make_mesh())
    model = parallel.to_host(sample_fn(state.ema_variables, keys[0], n))  # metrics on the host
    prior = sampling.draw_prior(exp.prior, keys[1], n, config.prior.clip)
    data, data2 = exp.data.sample(keys[2], n), exp.data.sample(keys[3], n)
    result = {
        "step": int(parallel.to_host(state.step)),
        "num_samples": n,
        "flow_steps": steps,
        "model_vs_data": compare(model, data, keys[4], e.num_projections),
        "prior_vs_data": compare(prior, data, keys[4], e.num_projections),
        "data_vs_data": compare(data2, data, keys[4], e.num_projections),
        "model_mean": np.asarray(jnp.mean(model, axis=0)).tolist(),
        "data_mean": np.asarray(jnp.mean(data, axis=0)).tolist(),
    }
    result["energy_ratio_model_over_prior"] = (
        result["model_vs_data"]["energy_distance"] / result["prior_vs_data"]["energy_distance"]
    )
    # The two-sample test and support metrics on the first c2st_samples of each set.
    m = min(e.c2st_samples, n)
    host = {k: np.asarray(v)[:m] for k, v in (("model", model), ("prior", prior), ("data2", data2))}
    ref = np.asarray(data)[:m]
    for name, x in host.items():
        key = "data_vs_data" if name == "data2" else f"{name}_vs_data"
        result[key]["c2st"] = c2st(x, ref, e.c2st_neighbors, e.c2st_folds, e.seed)
        result[key].update(support(x, ref))
    if config.data.name in TOY_MODES:
        modes, std = TOY_MODES[config.data.name](), TOY_MODE_STD[config.data.name]
        result["modes"] = {
            "model": mode_coverage(host["model"], modes, std),
            "data": mode_coverage(ref, modes, std),
        }
    logging.info("eval: %s", json.dumps(result))
    if not parallel.is_main_process():
        return result
    out_dir = os.path.join(workdir, "eval")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "toy_metrics.json"), "w") as f:
        json.dump(result, f, indent=2)
    plotting.panels(
        [
            ("prior", np.asarray(prior)),
            (f"model (K+κ={steps})", np.asarray(model)),
            ("data", np.asarray(data)),
        ],
        os.path.join(out_dir, "toy_eval.png"),
    )
    return result
