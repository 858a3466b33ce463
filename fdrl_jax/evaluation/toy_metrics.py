"""Sample-quality metrics for low-dimensional data: energy distance, sliced 2-Wasserstein."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

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
