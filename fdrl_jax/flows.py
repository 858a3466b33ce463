"""The particle flow (paper Eq. 9; docs/algorithm.md §5): x ← x − η ∇ₓ f'(r_θ(x)) + ν ξ.

The flow is written over a *potential*: any function mapping a batch x of shape (B, ...) to
per-sample scalars (B,). For FDRL the potential is f'(r_θ(x)) (`make_potential`); conditional
sampling and DGflow compose other terms into it. Because each sample's potential depends on that
sample alone, the gradient of the batch sum is the per-sample gradient.

`step_size` is the η a config's flow takes: `flow.eta`, or with `flow.normalise_eta` (off in
the paper) `flow.eta` / f''(1) of the divergence, so every pairing moves particles alike near
q = p (χ² at half, JS and logD at twice the KL flow's η) and η means the same for all four.

Noise at step k is drawn from `fold_in(key, k)`, so a flow split into segments (to record a
trajectory or to continue from K to K+κ) draws exactly the numbers an unsplit flow draws.
The number of steps may be a run-time value (a while loop), so a program compiled once runs
flows of any length (`flow`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax.divergences import CURVATURE_AT_ONE
from fdrl_jax.models import apply_spectral_norms

Array = jax.Array
Potential = Callable[[Array], Array]
# A step count: a Python int (static) or an int scalar array (a run-time value under jit).
Steps = int | Array


def step_size(eta: float, divergence: str, normalise: bool) -> float:
    """The flow's η for `divergence`: `eta`, or `eta` / f''(1) when `normalise` (config
    `flow.normalise_eta`)."""
    return eta / CURVATURE_AT_ONE[divergence] if normalise else eta


def config_step_size(config) -> float:
    """`step_size` of a run's config (its `flow.eta`, `divergence`, `flow.normalise_eta`)."""
    return step_size(config.flow.eta, config.divergence, config.flow.normalise_eta)


def make_potential(
    apply_fn: Callable[..., Array], params, fprime: Callable[[Array], Array]
) -> Potential:
    """x ↦ f'(net(x)), per sample. `apply_fn(params, x)` returns the net output of shape (B,).

    The net's weights are fixed during a flow, so spectral norms (variables with their
    `batch_stats`) are applied here, once, rather than by a power iteration at every call
    (`models.apply_spectral_norms`; the same function). Call this outside the flow's loop."""
    params = apply_spectral_norms(params)
    return lambda x: fprime(apply_fn(params, x))


def flow_step(potential: Potential, x: Array, key: Array, eta: float, nu: float) -> Array:
    """One Euler–Maruyama step of the gradient flow of `potential`."""
    grad = jax.grad(lambda y: jnp.sum(potential(y)))(x)
    noise = jax.random.normal(key, x.shape, x.dtype)
    return x - eta * grad + nu * noise


def _is_static(v) -> bool:
    return isinstance(v, int | np.integer)


def _run(
    potential: Potential, x: Array, key: Array, start: Steps, stop: Steps, eta: float, nu: float
) -> Array:
    def body(k, x):
        return flow_step(potential, x, jax.random.fold_in(key, k), eta, nu)

    if _is_static(start) and _is_static(stop):
        if stop <= start:
            return x
        x, _ = jax.lax.scan(lambda x, k: (body(k, x), None), x, jnp.arange(start, stop))
        return x
    # A run-time trip count: one compiled while loop serves every length (the step index is
    # int32 either way, so the noise equals the static loop's).
    return jax.lax.fori_loop(jnp.int32(start), jnp.asarray(stop, jnp.int32), body, x)


def _run_recorded(
    potential: Potential,
    x0: Array,
    key: Array,
    start: Steps,
    num_steps: Steps,
    eta: float,
    nu: float,
    marks: Array,
) -> tuple[Array, Array]:
    """One loop of num_steps steps that copies x into frame j after step marks[j]; frames
    whose mark is never reached stay NaN."""
    marks = jnp.asarray(marks, jnp.int32)
    select = (marks.shape[0],) + (1,) * x0.ndim
    traj = jnp.full((marks.shape[0], *x0.shape), jnp.nan, x0.dtype)
    traj = jnp.where((marks == 0).reshape(select), x0[None], traj)
    start = jnp.asarray(start, jnp.int32)

    def body(i, carry):
        x, traj = carry
        x = flow_step(potential, x, jax.random.fold_in(key, start + i), eta, nu)
        # every frame is rewritten each step (M x |x| selects): negligible next to the net
        return x, jnp.where((marks == i + 1).reshape(select), x[None], traj)

    return jax.lax.fori_loop(0, jnp.asarray(num_steps, jnp.int32), body, (x0, traj))


def flow(
    potential: Potential,
    x0: Array,
    key: Array,
    num_steps: Steps,
    eta: float,
    nu: float,
    *,
    start_step: Steps = 0,
    record_at: Sequence[int] | Array | None = None,
) -> Array | tuple[Array, Array]:
    """Run `num_steps` flow steps from x0 (steps start_step .. start_step+num_steps-1).

    Returns x_K with gradients stopped (nothing flows back through the chain). With
    `record_at` (step counts in [0, num_steps]) it also returns the trajectory stacked as
    (len(record_at), *x0.shape); `record_at=(0, K)` gives prior and result.

    `num_steps`, `start_step` and the values of `record_at` may be run-time values (traced
    int scalars / an int array), so one compiled program serves every flow length and every
    set of recorded lengths of the same count; only the number of recorded frames is
    static. Python ints for both and no `record_at` give a `lax.scan` of static length.
    Run-time marks are not checked: a frame whose mark is not in [0, num_steps] is NaN.
    """
    x0 = jax.lax.stop_gradient(x0)
    if record_at is None:
        return jax.lax.stop_gradient(
            _run(potential, x0, key, start_step, start_step + num_steps, eta, nu)
        )
    try:
        marks = np.asarray(record_at, np.int64).reshape(-1)
    except jax.errors.TracerArrayConversionError:  # run-time marks: not checked
        marks = None
    if marks is not None and marks.size and _is_static(num_steps):
        if marks.min() < 0 or marks.max() > num_steps:
            raise ValueError(f"record_at steps must lie in [0, {num_steps}], got {list(record_at)}")
    x, traj = _run_recorded(potential, x0, key, start_step, num_steps, eta, nu, record_at)
    return jax.lax.stop_gradient(x), jax.lax.stop_gradient(traj)
