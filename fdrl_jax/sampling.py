"""Algorithm 2: draw from the prior, flow K+κ steps with the EMA parameters, clamp."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from fdrl_jax import flow_lib, parallel

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
    num_steps: int | Array,
    eta: float,
    nu: float,
    clip_prior: bool = False,
    clip_output: bool = False,
    record_at: Sequence[int] | Array | None = None,
    constrain: Callable[[Array], Array] = lambda x: x,
) -> Array | tuple[Array, Array]:
    """n samples: x0 ~ prior, then `num_steps` (= K + κ) flow steps of f'(r_θ) with `params`.

    With `record_at` also returns the trajectory at those step counts (see `flow_lib.flow`);
    both may be run-time values under jit.
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
) -> Callable[..., Array]:
    """jitted (params, key, n, num_steps=None, record_at=None) -> samples for an experiment.

    The flow length (default `num_steps`, else K+κ) and the recorded step counts (default
    `record_at`) are run-time values: one compiled program serves every length, and every
    `record_at` with the same number of entries; n is static.

    On a `mesh` the samples are sharded over its devices; n is padded up to a multiple of the
    device count for the draw (the first n are returned, the same as on one device).
    """
    c = exp.config
    default_steps = c.flow.num_steps + c.flow.kappa if num_steps is None else num_steps
    default_marks = record_at
    fn = functools.partial(
        sample,
        exp.apply_fn,
        fprime=exp.fprime,
        eta=c.flow.eta,
        nu=c.flow.nu,
        clip_prior=c.prior.clip,
        clip_output=c.sample.clip_output,
        **({"constrain": parallel.batch_constraint(mesh)} if mesh is not None else {}),
    )
    jitted = jax.jit(
        lambda params, prior, key, n, steps, marks: fn(
            params, prior, key=key, n=n, num_steps=steps, record_at=marks
        ),
        static_argnums=3,
    )
    ndev = 1 if mesh is None else mesh.size

    def sample_fn(params, key, n, num_steps=None, record_at=None):
        steps = int(default_steps if num_steps is None else num_steps)
        marks = default_marks if record_at is None else record_at
        if marks is not None:
            marks = np.asarray(marks, np.int32).reshape(-1)
            if marks.size and (marks.min() < 0 or marks.max() > steps):
                raise ValueError(f"record_at steps must lie in [0, {steps}], got {list(marks)}")
        padded = -(-n // ndev) * ndev
        # int32 arrays, never Python ints (weakly typed: they would compile a second program)
        out = jitted(params, exp.prior, key, padded, np.int32(steps), marks)
        if padded == n:
            return out
        if marks is None:
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
