"""The particle flow (SPEC "Flow step", Eq. 9): x ← x − η ∇ₓ f'(r_θ(x)) + ν ξ.

The flow is written over a *potential*: any function mapping a batch x of shape (B, ...) to
per-sample scalars (B,). For FDRL the potential is f'(r_θ(x)) (`make_potential`); conditional
sampling and DGflow compose other terms into it. Because each sample's potential depends on that
sample alone, the gradient of the batch sum is the per-sample gradient.

Noise at step k is drawn from `fold_in(key, k)`, so a flow split into segments (to record a
trajectory or to continue from K to K+κ) draws exactly the numbers an unsplit flow draws.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Array = jax.Array
Potential = Callable[[Array], Array]


def make_potential(
    apply_fn: Callable[..., Array], params, fprime: Callable[[Array], Array]
) -> Potential:
    """x ↦ f'(net(x)), per sample. `apply_fn(params, x)` returns the net output of shape (B,)."""
    return lambda x: fprime(apply_fn(params, x))


def flow_step(potential: Potential, x: Array, key: Array, eta: float, nu: float) -> Array:
    """One Euler–Maruyama step of the gradient flow of `potential`."""
    grad = jax.grad(lambda y: jnp.sum(potential(y)))(x)
    noise = jax.random.normal(key, x.shape, x.dtype)
    return x - eta * grad + nu * noise


def _run(
    potential: Potential, x: Array, key: Array, start: int, stop: int, eta: float, nu: float
) -> Array:
    def body(x, k):
        return flow_step(potential, x, jax.random.fold_in(key, k), eta, nu), None

    if stop <= start:
        return x
    x, _ = jax.lax.scan(body, x, jnp.arange(start, stop))
    return x


def flow(
    potential: Potential,
    x0: Array,
    key: Array,
    num_steps: int,
    eta: float,
    nu: float,
    *,
    start_step: int = 0,
    record_at: Sequence[int] | None = None,
) -> Array | tuple[Array, Array]:
    """Run `num_steps` flow steps from x0 (steps start_step .. start_step+num_steps-1).

    Returns x_K with gradients stopped (nothing flows back through the chain). With
    `record_at` (step counts in [0, num_steps], static) it also returns the trajectory
    stacked as (len(record_at), *x0.shape); `record_at=(0, K)` gives prior and result.
    """
    x0 = jax.lax.stop_gradient(x0)
    if record_at is None:
        return jax.lax.stop_gradient(
            _run(potential, x0, key, start_step, start_step + num_steps, eta, nu)
        )
    marks = sorted(set(int(s) for s in record_at))
    if marks and (marks[0] < 0 or marks[-1] > num_steps):
        raise ValueError(f"record_at steps must lie in [0, {num_steps}], got {list(record_at)}")
    frames, x, done = {}, x0, 0
    for m in marks:
        x = _run(potential, x, key, start_step + done, start_step + m, eta, nu)
        frames[m], done = x, m
    x = _run(potential, x, key, start_step + done, start_step + num_steps, eta, nu)
    traj = jnp.stack([frames[int(s)] for s in record_at])
    return jax.lax.stop_gradient(x), jax.lax.stop_gradient(traj)
