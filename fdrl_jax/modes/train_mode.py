"""`--mode=train`: the training loop over the compiled step (`trainer.make_train_step`),
resumable.

Each iteration runs one step, then the periodic actions that are due (`itstime`): log the
metrics (and guard against divergence), save a checkpoint, write the sample figure. It writes
the run directory (`run/files.py`), stops cleanly on SIGTERM / SIGINT (saving the step it is
on; on several processes, the same step on every one: `run/multihost.py`), and on a diverged
step stops with a message or rolls back to the last checkpoint at a lower rate.
"""

from __future__ import annotations

import contextlib
import os
import time

import jax
from absl import logging

from fdrl_jax import parallel, trainer
from fdrl_jax.algorithms import TrainState
from fdrl_jax.data import is_image_data
from fdrl_jax.errors import DivergenceError
from fdrl_jax.experiment import build_experiment
from fdrl_jax.run import files, plotting, profiling
from fdrl_jax.run.checkpoints import Checkpointer
from fdrl_jax.run.multihost import StopRequests
from fdrl_jax.run.summaries import open_writer, write_image_file
from fdrl_jax.sampler import Sampler


def itstime(step: int, every: int, total: int) -> bool:
    """Whether a periodic action runs after `step`: every `every` steps and at the last."""
    return step % every == 0 or step == total


def step_of(state: TrainState) -> int:
    return int(parallel.to_host(state.step))


def _to_host(metrics: dict) -> dict:
    return {k: (bool(v) if k == "ok" else float(v)) for k, v in parallel.to_host(metrics).items()}


class Record:
    """Where the logged steps go: metrics.jsonl (`files.MetricsLog`), TensorBoard scalars, and
    the progress line (step, loss, steps/s, the time left; clu's ReportProgress needs
    TensorFlow). Only process 0 writes."""

    def __init__(self, workdir: str, start_step: int, total_steps: int, summaries):
        self.log, self.summaries = files.MetricsLog(workdir), summaries
        self.log.truncate(start_step)  # a resumed run's log reads as one run's
        self.total, self.last_step, self.last_time = total_steps, start_step, time.time()

    def __call__(self, step: int, metrics: dict) -> None:
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
        self.log.write({"step": step, **metrics, "steps_per_sec": rate})
        if self.summaries is not None:
            self.summaries.write_scalars(step, {**metrics, "steps_per_sec": rate})

    def close(self) -> None:
        self.log.close()
        if self.summaries is not None:
            self.summaries.close()


class SampleFigures:
    """The figure of training's progress: the same prior draw through the EMA params each
    time (a grid of images, or samples over the data), in samples/step_*.png, plus the loss
    curves and the TensorBoard image. Only process 0 writes; every process samples."""

    def __init__(self, config, workdir: str, exp, mesh, summaries):
        self.workdir, self.summaries = workdir, summaries
        self.images = is_image_data(exp.data)
        self.n = config.sample.grid_size if self.images else config.sample.num_samples
        self.sampler = Sampler(exp, mesh=mesh)
        self.key = jax.random.PRNGKey(config.sample.seed)
        self.data = None
        if not self.images:  # the points the samples are drawn over
            self.data = jax.device_get(exp.data.sample(jax.random.PRNGKey(config.eval.seed), 2000))

    def write(self, step: int, state: TrainState, log: files.MetricsLog) -> None:
        x = parallel.to_host(self.sampler(state.ema_variables, self.key, self.n))
        if not parallel.is_main_process():
            return
        path = os.path.join(self.workdir, "samples", f"step_{step:07d}.png")
        if self.images:
            plotting.save_image_grid(x, path)
        else:
            plotting.scatter_over_data(x, self.data, path, title=f"EMA samples, step {step}")
        log.sync()
        plotting.loss_curves(log.path, os.path.join(self.workdir, "metrics.png"))
        if self.summaries is not None:
            write_image_file(self.summaries, step, "samples", path)


def divergence_message(step: int, m: dict, workdir: str) -> str:
    return (
        f"Training diverged at step {step} (loss={m['loss']:.4g}, mean output on flowed/data "
        f"{m['out_q']:.4g}/{m['out_p']:.4g}). Stopped; the last good checkpoint in "
        f"{workdir}/checkpoints is kept. Lower --config.optim.lr or --config.flow.eta and run "
        "again to resume from it, or set --config.train.on_divergence=rollback."
    )


class Rollback:
    """What a diverged step does (the step's metrics are logged with `"diverged": true`): stop
    with `DivergenceError`, keeping the last checkpoint, or, with `train.on_divergence =
    "rollback"`, restore the last checkpoint with the learning rate × `rollback_lr_factor`
    (compounding; at most `max_rollbacks` times) and rewind the log to it."""

    def __init__(self, config, ckpt: Checkpointer, template, exp, mesh, workdir, log):
        self.t, self.ckpt, self.template, self.log = config.train, ckpt, template, log
        self.exp, self.mesh, self.workdir = exp, mesh, workdir
        self.count = 0

    def __call__(self, state: TrainState, m: dict) -> TrainState:
        bad = step_of(state) + 1  # a diverged step leaves the state as it was
        self.log.write({"step": bad, "diverged": True, **m})
        if self.t.on_divergence != "rollback" or self.count >= self.t.max_rollbacks:
            raise DivergenceError(divergence_message(bad, m, self.workdir))
        self.count += 1
        scale = state.lr_scale * self.t.rollback_lr_factor
        self.ckpt.wait()
        restored = self.ckpt.restore_latest(self.template)
        if restored is None:
            restored = trainer.initial_state(self.exp, self.mesh)
        self.log.truncate(step_of(restored))
        logging.warning(
            "Diverged at step %d: rolled back to step %d with the learning rate × %.3g "
            "(rollback %d of %d).",
            bad,
            step_of(restored),
            float(parallel.to_host(scale)),
            self.count,
            self.t.max_rollbacks,
        )
        return restored.replace(lr_scale=scale)


def train_mode(config, workdir: str) -> TrainState:
    """Train (or resume) the run in `workdir`; returns the final state.

    Stops early, with a checkpoint of the current step, on SIGTERM or SIGINT. A diverged step
    (see `algorithms.train_step`) stops training with `DivergenceError`, or, with
    `train.on_divergence = "rollback"`, restores the last checkpoint and continues with the
    learning rate × `train.rollback_lr_factor` (at most `train.max_rollbacks` times).
    """
    files.check_writable(workdir)  # fail before any data loading or fitting
    exp = build_experiment(config, prior_cache=files.PriorFile(workdir))
    mesh = parallel.make_mesh()
    files.write_config(config, workdir)
    t = config.train
    step_fn = trainer.make_train_step(exp, mesh)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=t.max_checkpoints)
    template = trainer.state_template(exp, mesh)  # the live state's buffers are donated
    state = ckpt.restore_latest(template)
    if state is None:
        state = trainer.initial_state(exp, mesh)
    else:
        logging.info("Resumed from step %d in %s", step_of(state), workdir)
    step = step_of(state)
    summaries = open_writer(workdir) if parallel.is_main_process() else None  # TensorBoard
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(ckpt.close)
        record = Record(workdir, step, t.num_steps, summaries)
        cleanup.callback(record.close)
        batches = trainer.batches(exp, mesh)  # streamed data: a prefetching thread
        cleanup.callback(batches.close)
        figures = SampleFigures(config, workdir, exp, mesh, summaries)
        roll_back = Rollback(config, ckpt, template, exp, mesh, workdir, record.log)
        stop = cleanup.enter_context(StopRequests())
        trace = cleanup.enter_context(
            profiling.StepTrace(workdir, t.profile_start, t.profile_steps)
        )
        iteration = 0
        while step < t.num_steps:
            state, metrics = step_fn(state, batches.get(step))
            step, iteration = step + 1, iteration + 1
            trace.after_step(iteration, state)
            # Decided once per iteration, the same on every process: a signal landing later
            # is handled (step, save, stop) in a next one, never between a save and the exit.
            stopping = stop.check(iteration)
            save = itstime(step, t.checkpoint_every, t.num_steps) or stopping
            if itstime(step, t.log_every, t.num_steps) or save:
                m = _to_host(metrics)
                if step_of(state) != step or not m.pop("ok"):  # the step was not applied
                    state = roll_back(state, m)
                    step = step_of(state)
                    continue
                record(step, m)
            if save:
                ckpt.save(step, state)
                record.log.sync()  # a bucket's log object matches its newest checkpoint
            if itstime(step, t.sample_every, t.num_steps):
                figures.write(step, state, record.log)
            if stopping:
                break
    if stop.received:
        logging.warning(
            "%s received: saved the checkpoint of step %d; run the same command again to resume.",
            stop.received,
            step,
        )
    return state
