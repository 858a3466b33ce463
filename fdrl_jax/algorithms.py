"""FDRL's two algorithms as pure functions: Algorithm 1 (`train_step`, over a `TrainState`) and
Algorithm 2 (`sample`, and `sample_from` for given starting points).

Both take params, PRNG keys and settings as arguments and read no config; the assembly layer
(`trainer.py`, `sampler.py`) binds an experiment's settings and compiles them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fdrl_jax import flows
from fdrl_jax.models import converge_spectral_norms

Array = jax.Array


def _identity(x: Array) -> Array:
    return x


# ---------------------------------------------------------------- Algorithm 1: training


@struct.dataclass
class TrainState:
    step: Array  # int32 scalar: number of optimiser steps taken
    params: object
    ema_params: object
    opt_state: object
    # Multiplies the learning rate; lowered by a divergence rollback and checkpointed with the
    # state, so a restarted run keeps the rate it had.
    lr_scale: Array
    # Non-trainable collections (spectral norm's power-iteration vectors in `batch_stats`) of
    # the live and the EMA params; {} for nets without any.
    stats: dict = struct.field(default_factory=dict)
    ema_stats: dict = struct.field(default_factory=dict)

    @property
    def variables(self) -> dict:
        """What `Experiment.apply_fn` takes, for the live params."""
        return {"params": self.params, **self.stats}

    @property
    def ema_variables(self) -> dict:
        """What `Experiment.apply_fn` takes, for the EMA params (sampling and evaluation)."""
        return {"params": self.ema_params, **self.ema_stats}


def make_optimizer(
    lr: float, decay_steps=(), decay_factor: float = 0.1, b1: float = 0.9, b2: float = 0.999
) -> tuple[optax.GradientTransformation, Callable]:
    """Adam with a piecewise-constant learning rate (× decay_factor at each of decay_steps);
    returns (optimiser, schedule)."""
    schedule = optax.piecewise_constant_schedule(lr, {int(s): decay_factor for s in decay_steps})
    return optax.adam(schedule, b1=b1, b2=b2), schedule


def init_state(model, tx: optax.GradientTransformation, key: Array, example_x: Array) -> TrainState:
    """The step-0 state of `model` (a Flax module) for inputs like `example_x`: params from
    `model.init(key, example_x)`, their EMA copy, `tx`'s state; spectral norms start
    converged (`models.converge_spectral_norms`)."""

    @jax.jit
    def init(key, x):
        variables = converge_spectral_norms(dict(model.init(key, x)))
        params = variables.pop("params")
        stats = variables
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            ema_params=jax.tree.map(jnp.copy, params),
            opt_state=tx.init(params),
            lr_scale=jnp.ones((), jnp.float32),
            stats=stats,
            ema_stats=jax.tree.map(jnp.copy, stats),
        )

    return init(key, example_x)


def train_step(
    state: TrainState,
    prior,
    x_p: Array,
    key: Array,
    *,
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    fprime: Callable,
    loss_fn: Callable,
    num_flow_steps: int,
    eta: float,
    nu: float,
    ema_decay: float,
    clip_prior: bool = False,
    max_abs_output: float = math.inf,
    constrain: Callable[[Array], Array] = _identity,
    update_stats: Callable | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One iteration of Algorithm 1: returns the new state and the step's metrics.

    Arguments: `prior` has `.sample(key, n)` (the flow's starting law q'); `x_p` is this
    step's data batch (B, ...) from p; `key` this step's PRNG key (callers fold the step into
    a root key). `apply_fn(variables, x)` is the estimator's output (B,) for variables
    {"params": ..., **stats}; `fprime` maps that output to f'(r) (`divergences.FPRIMES`) and
    `loss_fn(out_q, out_p)` is the Bregman loss (`divergences.LOSSES`); `tx` the optimiser.
    The flow runs `num_flow_steps` (K) steps of size `eta` with noise `nu` (K = 0: the stale
    estimator of paper Sec. 3.1); `ema_decay` is the EMA's m; `clip_prior` clamps the prior
    draw to [-1, 1] (images).

    The step draws x_0 from `prior` (as many as x_p), flows it with the current params, takes
    one optimiser step on the loss between x_K and x_p and updates the EMA params. A step
    whose loss or gradient is not finite, or whose mean |output| exceeds `max_abs_output`,
    leaves the state unchanged and reports `ok = False`, so a diverged state is never saved.

    `constrain` lays batches out over devices (`parallel.batch_constraint`); the flow, which
    is per-sample, then runs on every device's shard without communication. Nets with state
    collections (spectral norm) get one `update_stats(params, stats, x)` per step, before the
    flow, so the normalised weights are fixed during the flow and the loss.
    """
    k_prior, k_flow = jax.random.split(key)
    x_p = constrain(x_p)
    stats, ema_stats = state.stats, state.ema_stats
    if stats:
        stats = update_stats(state.params, stats, x_p[:1])
        ema_stats = update_stats(state.ema_params, ema_stats, x_p[:1])
    x0 = constrain(draw_prior(prior, k_prior, x_p.shape[0], clip_prior))
    potential = flows.make_potential(apply_fn, {"params": state.params, **stats}, fprime)
    x_k = flows.flow(potential, x0, k_flow, num_flow_steps, eta, nu)

    def loss_of(params):
        out = apply_fn({"params": params, **stats}, jnp.concatenate([x_k, x_p]))
        out_q, out_p = out[: x_k.shape[0]], out[x_k.shape[0] :]
        return loss_fn(out_q, out_p), (out_q, out_p)

    (loss, (out_q, out_p)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = jax.tree.map(lambda u: state.lr_scale * u, updates)  # Adam: scales the rate
    params = optax.apply_updates(state.params, updates)
    ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
    new = state.replace(
        step=state.step + 1,
        params=params,
        ema_params=ema,
        opt_state=opt_state,
        stats=stats,
        ema_stats=ema_stats,
    )

    grad_norm = optax.tree.norm(grads)
    out_size = jnp.maximum(jnp.mean(jnp.abs(out_q)), jnp.mean(jnp.abs(out_p)))
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (out_size <= max_abs_output)
    new = jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, state)
    metrics = {
        "loss": loss,
        "out_q": jnp.mean(out_q),
        "out_p": jnp.mean(out_p),
        "grad_norm": grad_norm,
        "flow_dist": jnp.mean(jnp.linalg.norm((x_k - x0).reshape(x0.shape[0], -1), axis=1)),
        "ok": ok,
    }
    return new, metrics


# ---------------------------------------------------------------- Algorithm 2: sampling


def clip_images(x):
    """Clamp to [-1, 1], the pixel range (every array of a tuple, e.g. (x, trajectory))."""
    return jax.tree.map(lambda a: jnp.clip(a, -1.0, 1.0), x)


def draw_prior(prior, key: Array, n: int, clip: bool = False) -> Array:
    """n draws of `prior` (`.sample(key, n)`), clamped to [-1, 1] when `clip` (images)."""
    x0 = prior.sample(key, n)
    return clip_images(x0) if clip else x0


def sample_from(
    potential: flows.Potential,
    x0: Array,
    key: Array,
    *,
    num_steps: int | Array,
    eta: float,
    nu: float,
    clip_output: bool = False,
    record_at: Sequence[int] | Array | None = None,
) -> Array | tuple[Array, Array]:
    """Algorithm 2 from given starting points x0 (source images to translate, interpolated
    prior draws): `num_steps` (K + κ) steps of the flow of `potential`, then the clamp to
    [-1, 1] when `clip_output`. With `record_at` (step counts) also returns the trajectory at
    those counts (`flows.flow`); the counts may be run-time values under jit."""
    out = flows.flow(potential, x0, key, num_steps, eta, nu, record_at=record_at)
    return clip_images(out) if clip_output else out


def sample(
    potential: flows.Potential,
    prior,
    key: Array,
    n: int,
    *,
    num_steps: int | Array,
    eta: float,
    nu: float,
    clip_prior: bool = False,
    clip_output: bool = False,
    record_at: Sequence[int] | Array | None = None,
    constrain: Callable[[Array], Array] = _identity,
) -> Array | tuple[Array, Array]:
    """Algorithm 2: n samples. x_0 ~ `prior` (clamped to [-1, 1] when `clip_prior`), then
    `sample_from` x_0. `potential` maps a batch to per-sample scalars: f'(r_θ(x)) with the
    EMA params for FDRL (`flows.make_potential`), or a composed one (`conditional`).
    `constrain` lays the batch out over devices (`parallel.batch_constraint`)."""
    k_prior, k_flow = jax.random.split(key)
    x0 = constrain(draw_prior(prior, k_prior, n, clip_prior))
    return sample_from(
        potential,
        x0,
        k_flow,
        num_steps=num_steps,
        eta=eta,
        nu=nu,
        clip_output=clip_output,
        record_at=record_at,
    )
