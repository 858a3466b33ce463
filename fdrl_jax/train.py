"""Algorithm 1: the train state, the pure training step, and the training loop (driver)."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import struct

from fdrl_jax import checkpoints, parallel, sampling
from fdrl_jax import flow as flow_lib
from fdrl_jax.data import is_image_data
from fdrl_jax.experiment import STREAM_DATA, STREAM_TRAIN, Experiment, build_experiment
from fdrl_jax.models import converge_spectral_norms

Array = jax.Array


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


def make_step_fn(exp: Experiment, mesh=None) -> tuple[Callable, Callable]:
    """(jitted state -> (state, metrics) drawing its own data batch, optimiser).

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
    shardings = {}
    if mesh is not None:
        parallel.check_batch(c.train.batch_size, mesh)
        repl = parallel.replicated(mesh)
        shardings = {"in_shardings": (repl, repl, repl), "out_shardings": (repl, repl)}

    @functools.partial(jax.jit, donate_argnums=0, **shardings)
    def step_fn(state, prior, data):
        k_data = jax.random.fold_in(jax.random.fold_in(root, STREAM_DATA), state.step)
        k_train = jax.random.fold_in(jax.random.fold_in(root, STREAM_TRAIN), state.step)
        x_p = data.sample(k_data, c.train.batch_size)
        new, metrics = step(state, prior, x_p, k_train)
        metrics["lr"] = schedule(state.step) * state.lr_scale
        return new, metrics

    return (lambda state: step_fn(state, exp.prior, exp.data)), tx


def initial_state(exp: Experiment, tx, mesh=None) -> TrainState:
    """The step-0 state (the same on every process), replicated over `mesh` if given."""
    key = jax.random.fold_in(jax.random.PRNGKey(exp.config.seed), 3)
    state = init_state(exp.model, tx, key, jnp.zeros((1, *exp.shape), jnp.float32))
    return state if mesh is None else jax.device_put(state, parallel.replicated(mesh))


def state_template(exp: Experiment, tx, mesh) -> TrainState:
    """Abstract state (shapes, dtypes, replicated sharding) to restore checkpoints into: a
    checkpoint saved on any device count restores onto this mesh."""
    return parallel.abstract_like(
        jax.eval_shape(lambda: initial_state(exp, tx)), parallel.replicated(mesh)
    )


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {prefix + k: v})
    return out


# Sections read only after training (sampling, scoring, refining, guiding, translating):
# changing them does not change the trained model.
INFERENCE_SECTIONS = (
    "sample.",
    "eval.",
    "refine.",
    "gan.",
    "classifier.",
    "conditional.",
    "translate.",
)


def warn_if_config_differs(config, workdir: str) -> list[str]:
    """Fields (outside the inference sections) where `config` differs from the run's
    config.json."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        saved = _flatten(json.load(f))
    now = _flatten(json.loads(config.to_json_best_effort()))
    diff = sorted(
        k
        for k in set(saved) | set(now)
        if saved.get(k) != now.get(k) and not k.startswith(INFERENCE_SECTIONS)
    )
    if diff:
        logging.warning(
            "The config differs from the one %s was trained with in: %s. Pass the same "
            "overrides as for training to sample/evaluate that model.",
            workdir,
            ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in diff),
        )
    return diff


def restore_for_inference(config, workdir: str) -> tuple[Experiment, TrainState]:
    """The experiment and the latest checkpointed state of `workdir` (error if none)."""
    exp = build_experiment(config, workdir)
    warn_if_config_differs(config, workdir)
    _, tx = make_step_fn(exp)
    ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), create=False)
    state = ckpt.restore_latest(state_template(exp, tx, parallel.make_mesh()))
    ckpt.close()
    if state is None:
        raise FileNotFoundError(
            f"No checkpoint in {workdir}/checkpoints: train first with "
            f"--mode=train --workdir={workdir}"
        )
    return exp, state


def _step_of(state: TrainState) -> int:
    return int(parallel.to_host(state.step))


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss or gradient, or an exploding estimator."""


def _to_host(metrics: dict) -> dict:
    return {k: (bool(v) if k == "ok" else float(v)) for k, v in parallel.to_host(metrics).items()}


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


class StopSignals:
    """Turns SIGTERM / SIGINT (preemption, Ctrl-C) into a flag the loop checks between steps,
    so the run saves a checkpoint and exits cleanly instead of dying mid-step."""

    def __enter__(self):
        self.received, self._previous = None, {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        del frame
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _divergence_message(step: int, m: dict, workdir: str) -> str:
    return (
        f"Training diverged at step {step} (loss={m['loss']:.4g}, mean output on flowed/data "
        f"{m['out_q']:.4g}/{m['out_p']:.4g}). Stopped; the last good checkpoint in "
        f"{workdir}/checkpoints is kept. Lower --config.optim.lr or --config.flow.eta and run "
        "again to resume from it, or set --config.train.on_divergence=rollback."
    )


def _summary_writer(workdir: str):
    """clu's TensorBoard writer where TensorFlow is installed, else None (metrics.jsonl and
    metrics.png always hold the same numbers)."""
    try:
        from clu import metric_writers
    except ImportError:
        return None
    return metric_writers.SummaryWriter(os.path.join(workdir, "tensorboard"))


def _check_workdir(workdir: str) -> None:
    try:
        os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise PermissionError(
            f"Cannot write to --workdir={workdir} ({e.strerror}); choose a writable directory."
        ) from e


def train(config, workdir: str) -> TrainState:
    """Train (or resume) the run in `workdir`; returns the final state.

    Stops early, with a checkpoint of the current step, on SIGTERM or SIGINT. A diverged step
    (see `train_step`) stops training with `DivergenceError`, or, with
    `train.on_divergence = "rollback"`, restores the last checkpoint and continues with the
    learning rate × `train.rollback_lr_factor` (at most `train.max_rollbacks` times).
    """
    from fdrl_jax import plotting

    _check_workdir(workdir)  # fail before any data loading or fitting
    exp = build_experiment(config, workdir)
    mesh = parallel.make_mesh()
    main = parallel.is_main_process()  # only process 0 writes logs and figures
    if main:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2, sort_keys=True))

    step_fn, tx = make_step_fn(exp, mesh)
    t = config.train
    ckpt = checkpoints.Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=t.max_checkpoints
    )
    template = state_template(exp, tx, mesh)  # the live state's buffers are donated
    state = ckpt.restore_latest(template)
    if state is None:
        state = initial_state(exp, tx, mesh)
    else:
        logging.info("Resumed from step %d in %s", _step_of(state), workdir)
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    if main:
        _truncate_metrics(metrics_path, _step_of(state))
    sample_fn = sampling.make_sample_fn(exp, mesh=mesh)
    sample_key = jax.random.PRNGKey(config.sample.seed)
    images = is_image_data(exp.data)
    num_shown = config.sample.grid_size if images else config.sample.num_samples
    plot_data = (
        None
        if images
        else jax.device_get(exp.data.sample(jax.random.PRNGKey(config.eval.seed), 2000))
    )
    summaries = _summary_writer(workdir) if main else None
    progress = Progress(_step_of(state), t.num_steps)
    rollbacks = 0

    try:
        with StopSignals() as stop, open(metrics_path if main else os.devnull, "a") as log:
            step = _step_of(state)
            while step < t.num_steps:
                step += 1
                state, metrics = step_fn(state)
                # Read the flag once: a signal landing later in this iteration is handled
                # (step, save, stop) in the next one, never between a save and the exit.
                stopping = stop.received is not None
                save = step % t.checkpoint_every == 0 or step == t.num_steps or stopping
                if step % t.log_every == 0 or save:
                    m = _to_host(metrics)
                    # A diverged step leaves the state as it was, so its step count lags.
                    if _step_of(state) != step or not m.pop("ok"):
                        bad = _step_of(state) + 1
                        log.write(json.dumps({"step": bad, "diverged": True, **m}) + "\n")
                        log.flush()
                        if t.on_divergence != "rollback" or rollbacks >= t.max_rollbacks:
                            raise DivergenceError(_divergence_message(bad, m, workdir))
                        rollbacks += 1
                        scale = state.lr_scale * t.rollback_lr_factor  # compounds
                        ckpt.wait()
                        state = ckpt.restore_latest(template) or initial_state(exp, tx, mesh)
                        state = state.replace(lr_scale=scale)
                        step = _step_of(state)
                        if main:
                            _truncate_metrics(metrics_path, step)
                        logging.warning(
                            "Diverged at step %d: rolled back to step %d with the "
                            "learning rate × %.3g (rollback %d of %d).",
                            bad,
                            step,
                            float(parallel.to_host(scale)),
                            rollbacks,
                            t.max_rollbacks,
                        )
                        continue
                    m["steps_per_sec"] = progress.report(step, m)
                    log.write(json.dumps({"step": step, **m}) + "\n")
                    log.flush()
                    if summaries is not None:
                        summaries.write_scalars(step, m)
                if save:
                    ckpt.save(step, state)
                if step % t.sample_every == 0 or step == t.num_steps:
                    # The same prior draw every time, so grids show how the model evolves.
                    x = parallel.to_host(sample_fn(state.ema_variables, sample_key, num_shown))
                    if main:
                        path = os.path.join(workdir, "samples", f"step_{step:07d}.png")
                        if images:
                            plotting.save_image_grid(x, path)
                        else:
                            plotting.scatter_over_data(
                                x, plot_data, path, title=f"EMA samples, step {step}"
                            )
                        plotting.loss_curves(metrics_path, os.path.join(workdir, "metrics.png"))
                if stopping:
                    break
            if stop.received:
                logging.warning(
                    "%s received: saved the checkpoint of step %d; run the same command again "
                    "to resume.",
                    stop.received,
                    step,
                )
    finally:
        ckpt.close()
        if summaries is not None:
            summaries.close()
    return state
