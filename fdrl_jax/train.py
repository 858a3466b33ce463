"""Algorithm 1: the train state, the pure training step, and the training loop (driver)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import struct

from fdrl_jax import checkpoints, sampling
from fdrl_jax import flow as flow_lib
from fdrl_jax.experiment import STREAM_DATA, STREAM_TRAIN, Experiment, build_experiment

Array = jax.Array


@struct.dataclass
class TrainState:
    step: Array  # int32 scalar: number of optimiser steps taken
    params: object
    ema_params: object
    opt_state: object


def make_optimizer(
    lr: float, decay_steps=(), decay_factor: float = 0.1, b1: float = 0.9, b2: float = 0.999
) -> tuple[optax.GradientTransformation, Callable]:
    """Adam with a piecewise-constant learning rate (× decay_factor at each of decay_steps)."""
    schedule = optax.piecewise_constant_schedule(lr, {int(s): decay_factor for s in decay_steps})
    return optax.adam(schedule, b1=b1, b2=b2), schedule


def init_state(model, tx: optax.GradientTransformation, key: Array, example_x: Array) -> TrainState:
    params = model.init(key, example_x)["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=tx.init(params),
    )


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
) -> tuple[TrainState, dict[str, Array]]:
    """One iteration of Algorithm 1 (pure).

    Draws x_0 from `prior` (same size as the data batch x_p), flows it `num_flow_steps` steps
    with the current params (0 gives the stale estimator of paper Sec. 3.1), takes one
    optimiser step on the Bregman loss between x_K and x_p, and updates the EMA params.
    `key` is this step's key (callers fold the step into a root key).

    A step whose loss or gradient is not finite leaves the state unchanged and reports
    `finite = False`, so a non-finite state can never be checkpointed.
    """
    k_prior, k_flow = jax.random.split(key)
    x0 = sampling.draw_prior(prior, k_prior, x_p.shape[0], clip_prior)
    potential = flow_lib.make_potential(apply_fn, state.params, fprime)
    x_k = flow_lib.flow(potential, x0, k_flow, num_flow_steps, eta, nu)

    def loss_of(params):
        out = apply_fn(params, jnp.concatenate([x_k, x_p]))
        out_q, out_p = out[: x_k.shape[0]], out[x_k.shape[0] :]
        return loss_fn(out_q, out_p), (out_q, out_p)

    (loss, (out_q, out_p)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = optax.incremental_update(params, state.ema_params, 1.0 - ema_decay)
    new = TrainState(step=state.step + 1, params=params, ema_params=ema, opt_state=opt_state)

    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    new = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
    metrics = {
        "loss": loss,
        "out_q": jnp.mean(out_q),
        "out_p": jnp.mean(out_p),
        "grad_norm": grad_norm,
        "flow_dist": jnp.mean(jnp.linalg.norm((x_k - x0).reshape(x0.shape[0], -1), axis=1)),
        "finite": finite,
    }
    return new, metrics


def make_step_fn(exp: Experiment) -> tuple[Callable, Callable]:
    """(jitted state -> (state, metrics) drawing its own data batch, lr schedule).

    The step's keys are `fold_in(root, step)`, so a resumed run repeats an uninterrupted one.
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
    )

    @functools.partial(jax.jit, donate_argnums=0)
    def step_fn(state, prior, data):
        k_data = jax.random.fold_in(jax.random.fold_in(root, STREAM_DATA), state.step)
        k_train = jax.random.fold_in(jax.random.fold_in(root, STREAM_TRAIN), state.step)
        x_p = data.sample(k_data, c.train.batch_size)
        new, metrics = step(state, prior, x_p, k_train)
        metrics["lr"] = schedule(state.step)
        return new, metrics

    return (lambda state: step_fn(state, exp.prior, exp.data)), tx


def initial_state(exp: Experiment, tx) -> TrainState:
    key = jax.random.fold_in(jax.random.PRNGKey(exp.config.seed), 3)
    return init_state(exp.model, tx, key, jnp.zeros((1, *exp.shape), jnp.float32))


def restore_for_inference(config, workdir: str) -> tuple[Experiment, TrainState]:
    """The experiment and the latest checkpointed state of `workdir` (error if none)."""
    exp = build_experiment(config)
    _, tx = make_step_fn(exp)
    ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), create=False)
    state = ckpt.restore_latest(initial_state(exp, tx))
    ckpt.close()
    if state is None:
        raise FileNotFoundError(
            f"No checkpoint in {workdir}/checkpoints: train first with "
            f"--mode=train --workdir={workdir}"
        )
    return exp, state


class NonFiniteError(FloatingPointError):
    """Training produced a non-finite loss or gradient."""


def _to_host(metrics: dict) -> dict:
    return {k: (bool(v) if k == "finite" else float(v)) for k, v in jax.device_get(metrics).items()}


def _truncate_metrics(path: str, max_step: int) -> None:
    """Drop lines past the restored step, so a resumed run's log reads as one run."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        keep = [ln for ln in f if ln.strip() and json.loads(ln).get("step", 0) <= max_step]
    with open(path, "w") as f:
        f.writelines(keep)


class Progress:
    """Logs step, loss, steps/s and the time left (clu's ReportProgress needs TensorFlow)."""

    def __init__(self, start_step: int, total_steps: int):
        self.total, self.last_step, self.last_time = total_steps, start_step, time.time()

    def report(self, step: int, metrics: dict) -> float:
        now = time.time()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        left = (self.total - step) / rate if rate > 0 else float("nan")
        logging.info(
            "step %d/%d  loss %.5f  %.1f steps/s  %s left",
            step,
            self.total,
            metrics["loss"],
            rate,
            time.strftime("%H:%M:%S", time.gmtime(left)) if left == left else "?",
        )
        return rate


def train(config, workdir: str) -> TrainState:
    """Train (or resume) the run in `workdir`; returns the final state."""
    from fdrl_jax import plotting

    exp = build_experiment(config)
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    step_fn, tx = make_step_fn(exp)
    t = config.train
    ckpt = checkpoints.Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=t.max_checkpoints
    )
    state = ckpt.restore_latest(initial_state(exp, tx))
    if state is None:
        state = initial_state(exp, tx)
    else:
        logging.info("Resumed from step %d in %s", int(state.step), workdir)
    start = int(state.step)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    _truncate_metrics(metrics_path, start)
    sample_fn = sampling.make_sample_fn(exp)
    sample_key = jax.random.PRNGKey(config.sample.seed)
    plot_data = jax.device_get(exp.data.sample(jax.random.PRNGKey(config.eval.seed), 2000))
    progress = Progress(start, t.num_steps)

    try:
        with open(metrics_path, "a") as log:
            for step in range(start + 1, t.num_steps + 1):
                state, metrics = step_fn(state)
                save = step % t.checkpoint_every == 0 or step == t.num_steps
                if step % t.log_every == 0 or save:
                    m = _to_host(metrics)
                    # A non-finite step leaves the state as it was, so its step count lags.
                    if int(state.step) != step or not m.pop("finite"):
                        log.write(json.dumps({"step": step, "nonfinite": True, **m}) + "\n")
                        raise NonFiniteError(
                            f"Non-finite loss or gradient at step {int(state.step) + 1} "
                            f"(loss={m['loss']}). Training stopped; the last good checkpoint "
                            f"in {workdir}/checkpoints is kept. Lower --config.optim.lr or "
                            "--config.flow.eta and rerun to resume from it."
                        )
                    m["steps_per_sec"] = progress.report(step, m)
                    log.write(json.dumps({"step": step, **m}) + "\n")
                    log.flush()
                if save:
                    ckpt.save(step, state)
                if step % t.sample_every == 0 or step == t.num_steps:
                    x = jax.device_get(
                        sample_fn(state.ema_params, sample_key, config.sample.num_samples)
                    )
                    plotting.scatter_over_data(
                        x,
                        plot_data,
                        os.path.join(workdir, "samples", f"step_{step:07d}.png"),
                        title=f"EMA samples, step {step}",
                    )
    finally:
        ckpt.close()
    return state
