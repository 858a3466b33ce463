"""`--mode=train`: the training loop (Algorithm 1 over `train.make_step_fn`), resumable.

It writes the run directory (run/workdir.py), checkpoints every `train.checkpoint_every`
steps, stops cleanly on SIGTERM / SIGINT (saving the step it is on; on several processes, the
same step on every one: run/multihost.py), and guards against divergence (stop with a
message, or roll back to the last checkpoint at a lower rate).
"""

from __future__ import annotations

import os
import time

import jax
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.data import is_image_data
from fdrl_jax.data.streaming import is_streamed
from fdrl_jax.errors import DivergenceError
from fdrl_jax.run import plotting
from fdrl_jax.run import workdir as workdir_lib
from fdrl_jax.run.checkpoints import Checkpointer
from fdrl_jax.run.multihost import StopRequests
from fdrl_jax.run.summaries import open_writer, write_image_file
from fdrl_jax.sampling import make_sample_fn
from fdrl_jax.train import (
    TrainState,
    initial_state,
    make_batch_stream,  # streamed data (data/streaming.py)
    make_step_fn,
    state_template,
)


def _step_of(state: TrainState) -> int:
    return int(parallel.to_host(state.step))


def _to_host(metrics: dict) -> dict:
    return {k: (bool(v) if k == "ok" else float(v)) for k, v in parallel.to_host(metrics).items()}


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


def _divergence_message(step: int, m: dict, workdir: str) -> str:
    return (
        f"Training diverged at step {step} (loss={m['loss']:.4g}, mean output on flowed/data "
        f"{m['out_q']:.4g}/{m['out_p']:.4g}). Stopped; the last good checkpoint in "
        f"{workdir}/checkpoints is kept. Lower --config.optim.lr or --config.flow.eta and run "
        "again to resume from it, or set --config.train.on_divergence=rollback."
    )


def train(config, workdir: str) -> TrainState:
    """Train (or resume) the run in `workdir`; returns the final state.

    Stops early, with a checkpoint of the current step, on SIGTERM or SIGINT. A diverged step
    (see `train_step`) stops training with `DivergenceError`, or, with
    `train.on_divergence = "rollback"`, restores the last checkpoint and continues with the
    learning rate × `train.rollback_lr_factor` (at most `train.max_rollbacks` times).
    """
    workdir_lib.check_writable(workdir)  # fail before any data loading or fitting
    exp = workdir_lib.experiment(config, workdir)
    mesh = parallel.make_mesh()
    main = parallel.is_main_process()  # only process 0 writes logs and figures
    workdir_lib.write_config(config, workdir)

    step_fn, tx = make_step_fn(exp, mesh)
    t = config.train
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=t.max_checkpoints)
    template = state_template(exp, tx, mesh)  # the live state's buffers are donated
    state = ckpt.restore_latest(template)
    if state is None:
        state = initial_state(exp, tx, mesh)
    else:
        logging.info("Resumed from step %d in %s", _step_of(state), workdir)
    log = workdir_lib.MetricsLog(workdir)
    log.truncate(_step_of(state))
    sample_fn = make_sample_fn(exp, mesh=mesh)
    sample_key = jax.random.PRNGKey(config.sample.seed)
    images = is_image_data(exp.data)
    num_shown = config.sample.grid_size if images else config.sample.num_samples
    plot_data = (
        None
        if images
        else jax.device_get(exp.data.sample(jax.random.PRNGKey(config.eval.seed), 2000))
    )
    summaries = open_writer(workdir) if main else None  # TensorBoard (run/summaries.py)
    # Streamed data (data/streaming.py): each step's batch comes from a prefetching stream.
    stream = make_batch_stream(exp, mesh) if is_streamed(exp.data) else None
    progress = Progress(_step_of(state), t.num_steps)
    rollbacks = 0

    try:
        with StopRequests() as stop:
            step, iteration = _step_of(state), 0
            while step < t.num_steps:
                step, iteration = step + 1, iteration + 1
                if stream is None:
                    state, metrics = step_fn(state)
                else:
                    state, metrics = step_fn(state, stream.get(step - 1))
                # Decided once per iteration, the same on every process: a signal landing
                # later is handled (step, save, stop) in a next one, never between a save
                # and the exit.
                stopping = stop.check(iteration)
                save = step % t.checkpoint_every == 0 or step == t.num_steps or stopping
                if step % t.log_every == 0 or save:
                    m = _to_host(metrics)
                    # A diverged step leaves the state as it was, so its step count lags.
                    if _step_of(state) != step or not m.pop("ok"):
                        bad = _step_of(state) + 1
                        log.write({"step": bad, "diverged": True, **m})
                        if t.on_divergence != "rollback" or rollbacks >= t.max_rollbacks:
                            raise DivergenceError(_divergence_message(bad, m, workdir))
                        rollbacks += 1
                        scale = state.lr_scale * t.rollback_lr_factor  # compounds
                        ckpt.wait()
                        state = ckpt.restore_latest(template) or initial_state(exp, tx, mesh)
                        state = state.replace(lr_scale=scale)
                        step = _step_of(state)
                        log.truncate(step)
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
                    log.write({"step": step, **m})
                    if summaries is not None:
                        summaries.write_scalars(step, m)
                if save:
                    ckpt.save(step, state)
                    log.sync()  # a bucket's log object matches its newest checkpoint
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
                        log.sync()
                        plotting.loss_curves(log.path, os.path.join(workdir, "metrics.png"))
                        if summaries is not None:
                            write_image_file(summaries, step, "samples", path)
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
        log.close()
        ckpt.close()
        if stream is not None:
            stream.close()
        if summaries is not None:
            summaries.close()
    return state
