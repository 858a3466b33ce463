"""Algorithm 1: the train state and the pure training step, and the step function and initial
state an experiment's config asks for (`make_step_fn`, `initial_state`). The training loop
(checkpoints, signals, logs) is `run/training.py`."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from fdrl_jax import flow_lib, parallel, sampling
from fdrl_jax.data import streaming
from fdrl_jax.models import converge_spectral_norms

Array = jax.Array

# Separate PRNG streams derived from the root key (`config.seed`); each is folded with the
# step, so a resumed run draws what an uninterrupted one draws and no key is checkpointed.
STREAM_TRAIN, STREAM_DATA, STREAM_FIT = 0, 1, 2


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
    """Adam with a piecewise-constant learning rate (× decay_factor at each of decay_steps)."""
    schedule = optax.piecewise_constant_schedule(lr, {int(s): decay_factor for s in decay_steps})
    return optax.adam(schedule, b1=b1, b2=b2), schedule


def init_state(model, tx: optax.GradientTransformation, key: Array, example_x: Array) -> TrainState:
    """The step-0 state: params from `model.init`, EMA copy, optimiser state; spectral norms
    start converged (`models.converge_spectral_norms`)."""

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
    constrain: Callable[[Array], Array] = lambda x: x,
    update_stats: Callable | None = None,
) -> tuple[TrainState, dict[str, Array]]:
    """One iteration of Algorithm 1 (pure).

    Draws x_0 from `prior` (same size as the data batch x_p), flows it `num_flow_steps` steps
    with the current params (0 gives the stale estimator of paper Sec. 3.1), takes one
    optimiser step on the Bregman loss between x_K and x_p, and updates the EMA params.
    `key` is this step's key (callers fold the step into a root key).

    A step whose loss or gradient is not finite, or whose mean |output| exceeds
    `max_abs_output` (an exploding estimator), leaves the state unchanged and reports
    `ok = False`, so a diverged state can never be checkpointed.

    `constrain` lays batches out over devices (`parallel.batch_constraint`); the flow, which
    is per-sample, then runs on every device's shard without communication.

    Nets with state collections (spectral norm) get one `update_stats(params, stats, x)` per
    step, before the flow, so the normalised weights are fixed during the flow and the loss.
    """
    k_prior, k_flow = jax.random.split(key)
    x_p = constrain(x_p)
    stats, ema_stats = state.stats, state.ema_stats
    if stats:
        stats = update_stats(state.params, stats, x_p[:1])
        ema_stats = update_stats(state.ema_params, ema_stats, x_p[:1])
    x0 = constrain(sampling.draw_prior(prior, k_prior, x_p.shape[0], clip_prior))
    potential = flow_lib.make_potential(apply_fn, {"params": state.params, **stats}, fprime)
    x_k = flow_lib.flow(potential, x0, k_flow, num_flow_steps, eta, nu)

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


def make_step_fn(exp, mesh=None) -> tuple[Callable, Callable]:
    """(jitted step, optimiser). The step is state -> (state, metrics), drawing its own data
    batch from the device-resident set; for streamed data (`data/streaming.py`) it is
    (state, batch) -> (state, metrics), with the `StreamedBatch` of the state's step
    (`make_batch_stream`).

    The step's keys are `fold_in(root, step)`, so a resumed run repeats an uninterrupted one.
    On a `mesh`, the state is replicated and the batch sharded over its `data` axis; the
    random numbers do not depend on the layout, so any device count computes the same step.
    """
    c = exp.config
    tx, schedule = make_optimizer(
        c.optim.lr, c.optim.decay_steps, c.optim.decay_factor, c.optim.b1, c.optim.b2
    )
    root = jax.random.PRNGKey(c.seed)
    step = functools.partial(
        train_step,
        apply_fn=exp.apply_fn,
        tx=tx,
        fprime=exp.fprime,
        loss_fn=exp.loss_fn,
        num_flow_steps=0 if c.stale_estimator else c.flow.num_steps,
        eta=c.flow.eta,
        nu=c.flow.nu,
        ema_decay=c.train.ema_decay,
        clip_prior=c.prior.clip,
        max_abs_output=c.train.max_abs_output,
        update_stats=exp.update_stats,
        **({"constrain": parallel.batch_constraint(mesh)} if mesh is not None else {}),
    )
    streamed = streaming.is_streamed(exp.data)
    shardings = {}
    if mesh is not None:
        parallel.check_batch(c.train.batch_size, mesh)
        repl = parallel.replicated(mesh)
        data_sharding = parallel.batch_sharded(mesh) if streamed else repl
        shardings = {"in_shardings": (repl, repl, data_sharding), "out_shardings": (repl, repl)}

    @functools.partial(jax.jit, donate_argnums=0, **shardings)
    def step_fn(state, prior, data):
        k_data = jax.random.fold_in(jax.random.fold_in(root, STREAM_DATA), state.step)
        k_train = jax.random.fold_in(jax.random.fold_in(root, STREAM_TRAIN), state.step)
        # A streamed batch holds the rows this key draws from the set, and augments them.
        x_p = data.sample(k_data, c.train.batch_size)
        new, metrics = step(state, prior, x_p, k_train)
        metrics["lr"] = schedule(state.step) * state.lr_scale
        return new, metrics

    if streamed:
        return (lambda state, batch: step_fn(state, exp.prior, batch)), tx
    return (lambda state: step_fn(state, exp.prior, exp.data)), tx


def make_batch_stream(exp, mesh=None) -> streaming.BatchStream:
    """The training batches of streamed data (`exp.data` a `HostImageData`), by step, keyed
    as `make_step_fn` keys them: `stream.get(s)` is the batch of the step from state.step = s."""
    c = exp.config
    data_key = jax.random.fold_in(jax.random.PRNGKey(c.seed), STREAM_DATA)
    sharding = parallel.batch_sharded(mesh) if mesh is not None else None
    return streaming.BatchStream(
        exp.data, data_key, c.train.batch_size, sharding, prefetch=c.data.prefetch
    )


def initial_state(exp, tx, mesh=None) -> TrainState:
    """The step-0 state (the same on every process), replicated over `mesh` if given."""
    key = jax.random.fold_in(jax.random.PRNGKey(exp.config.seed), 3)
    state = init_state(exp.model, tx, key, jnp.zeros((1, *exp.shape), jnp.float32))
    return state if mesh is None else jax.device_put(state, parallel.replicated(mesh))


def state_template(exp, tx, mesh) -> TrainState:
    """Abstract state (shapes, dtypes, replicated sharding) to restore checkpoints into: a
    checkpoint saved on any device count restores onto this mesh."""
    return parallel.abstract_like(
        jax.eval_shape(lambda: initial_state(exp, tx)), parallel.replicated(mesh)
    )
