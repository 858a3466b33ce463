"""Algorithm 2: draw from the prior, flow K+κ steps with the EMA parameters, clamp."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import flow as flow_lib
from fdrl_jax import parallel

Array = jax.Array


def draw_prior(prior, key: Array, n: int, clip: bool) -> Array:
    """A prior batch, clamped to [-1, 1] when the data lives there (images)."""
    x0 = prior.sample(key, n)
    return jnp.clip(x0, -1.0, 1.0) if clip else x0


def sample(
    apply_fn: Callable,
    params,
    prior,
    fprime: Callable,
    key: Array,
    n: int,
    *,
    num_steps: int,
    eta: float,
    nu: float,
    clip_prior: bool = False,
    clip_output: bool = False,
    record_at: Sequence[int] | None = None,
    constrain: Callable[[Array], Array] = lambda x: x,
) -> Array | tuple[Array, Array]:
    """n samples: x0 ~ prior, then `num_steps` (= K + κ) flow steps of f'(r_θ) with `params`.

    With `record_at` also returns the trajectory at those step counts (see `flow.flow`).
    `constrain` lays the batch out over devices (`parallel.batch_constraint`).
    """
    k_prior, k_flow = jax.random.split(key)
    x0 = constrain(draw_prior(prior, k_prior, n, clip_prior))
    potential = flow_lib.make_potential(apply_fn, params, fprime)
    out = flow_lib.flow(potential, x0, k_flow, num_steps, eta, nu, record_at=record_at)
    if clip_output:
        out = jax.tree.map(lambda a: jnp.clip(a, -1.0, 1.0), out)
    return out


def make_sample_fn(
    exp, num_steps: int | None = None, record_at: Sequence[int] | None = None, mesh=None
) -> Callable[[object, Array, int], Array]:
    """jitted (params, key, n) -> samples for an experiment; default K+κ steps.

    On a `mesh` the samples are sharded over its devices; n is padded up to a multiple of the
    device count for the draw (the first n are returned, the same as on one device).
    """
    c = exp.config
    steps = c.flow.num_steps + c.flow.kappa if num_steps is None else num_steps
    fn = functools.partial(
        sample,
        exp.apply_fn,
        fprime=exp.fprime,
        num_steps=steps,
        eta=c.flow.eta,
        nu=c.flow.nu,
        clip_prior=c.prior.clip,
        clip_output=c.sample.clip_output,
        record_at=record_at,
        **({"constrain": parallel.batch_constraint(mesh)} if mesh is not None else {}),
    )
    jitted = jax.jit(
        lambda params, prior, key, n: fn(params, prior, key=key, n=n), static_argnums=3
    )
    ndev = 1 if mesh is None else mesh.size

    def sample_fn(params, key, n):
        padded = -(-n // ndev) * ndev
        out = jitted(params, exp.prior, key, padded)
        if padded == n:
            return out
        if record_at is None:
            return out[:n]
        x, traj = out
        return x[:n], traj[:, :n]

    return sample_fn


def sample_many(sample_fn: Callable, variables, key: Array, n: int, batch_size: int):
    """n samples on the host, drawn `batch_size` at a time (batch i uses fold_in(key, i); a
    single batch uses `key` itself, so small n equals one `sample_fn` call)."""
    if n <= batch_size:
        return parallel.to_host(sample_fn(variables, key, n))
    chunks = []
    for i, start in enumerate(range(0, n, batch_size)):
        m = min(batch_size, n - start)
        chunks.append(parallel.to_host(sample_fn(variables, jax.random.fold_in(key, i), m)))
        logging.log_every_n_seconds(logging.INFO, "sampled %d/%d", 30, start + m, n)
    return np.concatenate(chunks)


def run_sample(config, workdir: str) -> str:
    """`--mode=sample`: N samples from the latest checkpoint's EMA params to eval/samples.npz
    (`samples`, float; images also as uint8 `images`) and a figure (a grid for images)."""
    from fdrl_jax import plotting
    from fdrl_jax.data import is_image_data, to_uint8
    from fdrl_jax.train import restore_for_inference

    exp, state = restore_for_inference(config, workdir)
    n, step = config.sample.num_samples, int(parallel.to_host(state.step))
    sample_fn = make_sample_fn(exp, mesh=parallel.make_mesh())
    key = jax.random.PRNGKey(config.sample.seed)
    x = sample_many(sample_fn, state.ema_variables, key, n, config.sample.batch_size)
    path = os.path.join(workdir, "eval", "samples.npz")
    if parallel.is_main_process():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        figure = os.path.join(workdir, "eval", "samples.png")
        if is_image_data(exp.data):
            np.savez(path, samples=x, images=to_uint8(x), step=step)
            plotting.save_image_grid(x[: config.sample.grid_size], figure)
        else:
            np.savez(path, samples=x, step=step)
            data = np.asarray(exp.data.sample(jax.random.PRNGKey(config.eval.seed), n))
            plotting.scatter_over_data(x, data, figure, title=f"{n} samples, step {step}")
        logging.info("Wrote %d samples to %s", n, path)
    return path
