"""An experiment's training step, compiled: Algorithm 1 (`algorithms.train_step`) with the
config's settings, on a mesh; its optimiser, initial state, checkpoint template, and the data
each step trains on (`batches`). The loop that runs it is `modes/train_mode.py`.

The step's keys are `fold_in(stream, step)` (`experiment.stream_key`), so a resumed run
repeats an uninterrupted one. On a mesh the state is replicated and the batch sharded over its
`data` axis; the random numbers do not depend on the layout, so any device count computes the
same step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from fdrl_jax import algorithms, compilation, flows, parallel
from fdrl_jax.algorithms import TrainState
from fdrl_jax.data import streaming
from fdrl_jax.experiment import STREAM_DATA, STREAM_INIT, STREAM_TRAIN, Experiment, stream_key

# (state, data) -> (state, metrics); `data` is what `batches(exp).get(state.step)` returns.
StepFn = Callable[[TrainState, object], tuple[TrainState, dict]]


def optimizer_for(config) -> tuple[optax.GradientTransformation, Callable]:
    """(Adam, its learning-rate schedule) of the config's `optim` section."""
    o = config.optim
    return algorithms.make_optimizer(o.lr, o.decay_steps, o.decay_factor, o.b1, o.b2)


def make_train_step(exp: Experiment, mesh=None) -> StepFn:
    """The jitted step (state, data) -> (state, metrics), donating the state.

    `data` is the device-resident set, from which the step draws its batch with the step's
    key, or a streamed batch holding exactly those rows (`data/streaming.py`); `batches`
    gives the right one for each step. The metrics add the step's learning rate `lr`.
    Compiled with `compilation.compiler_options`, so it cannot be nested in another `jit`.
    """
    c = exp.config
    tx, schedule = optimizer_for(c)
    constrain = {} if mesh is None else {"constrain": parallel.batch_constraint(mesh)}
    step = functools.partial(
        algorithms.train_step,
        apply_fn=exp.apply_fn,
        tx=tx,
        fprime=exp.fprime,
        loss_fn=exp.loss_fn,
        num_flow_steps=0 if c.stale_estimator else c.flow.num_steps,
        eta=flows.config_step_size(c),
        nu=c.flow.nu,
        ema_decay=c.train.ema_decay,
        clip_prior=c.prior.clip,
        max_abs_output=c.train.max_abs_output,
        update_stats=exp.update_stats,
        **constrain,
    )
    shardings = {}
    if mesh is not None:
        parallel.check_batch(c.train.batch_size, mesh)
        repl = parallel.replicated(mesh)
        data = parallel.batch_sharded(mesh) if streaming.is_streamed(exp.data) else repl
        shardings = {"in_shardings": (repl, repl, data), "out_shardings": (repl, repl)}

    options = compilation.compiler_options(exp.model)

    @functools.partial(jax.jit, donate_argnums=0, compiler_options=options, **shardings)
    def step_fn(state, prior, data):
        # A streamed batch holds the rows this key draws from the set, and augments them.
        x_p = data.sample(stream_key(c, STREAM_DATA, state.step), c.train.batch_size)
        new, metrics = step(state, prior, x_p, stream_key(c, STREAM_TRAIN, state.step))
        metrics["lr"] = schedule(state.step) * state.lr_scale
        return new, metrics

    def run(state, data):
        return step_fn(state, exp.prior, data)

    run.lower = lambda state, data: step_fn.lower(state, exp.prior, data)  # to inspect it
    return run


@dataclasses.dataclass(frozen=True)
class ResidentData:
    """Device-resident data as every step's `data`: the step draws its own batch from it."""

    data: object

    def get(self, step: int):
        del step
        return self.data

    def close(self) -> None:
        pass


def batches(exp: Experiment, mesh=None) -> ResidentData | streaming.BatchStream:
    """What each step trains on: `.get(s)` is the `data` argument of the step from
    state.step = s (`.close()` when done). Streamed data (a `HostImageData`) comes from a
    prefetching `BatchStream` keyed as the step keys its draws; any other data is the set."""
    if not streaming.is_streamed(exp.data):
        return ResidentData(exp.data)
    c = exp.config
    sharding = parallel.batch_sharded(mesh) if mesh is not None else None
    return streaming.BatchStream(
        exp.data,
        stream_key(c, STREAM_DATA),
        c.train.batch_size,
        sharding,
        prefetch=c.data.prefetch,
    )


def initial_state(exp: Experiment, mesh=None) -> TrainState:
    """The step-0 state (the same on every process), replicated over `mesh` if given."""
    tx, _ = optimizer_for(exp.config)
    key = stream_key(exp.config, STREAM_INIT)
    state = algorithms.init_state(exp.model, tx, key, jnp.zeros((1, *exp.shape), jnp.float32))
    return state if mesh is None else jax.device_put(state, parallel.replicated(mesh))


def state_template(exp: Experiment, mesh) -> TrainState:
    """Abstract state (shapes, dtypes, replicated sharding) to restore checkpoints into: a
    checkpoint saved on any device count restores onto this mesh."""
    return parallel.abstract_like(
        jax.eval_shape(lambda: initial_state(exp)), parallel.replicated(mesh)
    )
