"""`--mode=sample`: samples of the latest checkpoint's EMA params, with a figure."""

from __future__ import annotations

import os

import jax
import numpy as np
from absl import logging

from fdrl_jax import parallel
from fdrl_jax.data import is_image_data, to_uint8
from fdrl_jax.run import files, plotting
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.sampler import Sampler


def sample_mode(config, workdir: str) -> str:
    """`sample.num_samples` samples (K + κ flow steps) to eval/samples.npz (`samples`, float;
    images also as uint8 `images`) and eval/samples.png (a grid, or a scatter over the data);
    returns the .npz path."""
    exp, state = restore_for_inference(config, workdir)
    n, step = config.sample.num_samples, int(parallel.to_host(state.step))
    sampler = Sampler(exp, mesh=parallel.make_mesh())
    key = jax.random.PRNGKey(config.sample.seed)
    x = sampler.sample_many(state.ema_variables, key, n, config.sample.batch_size)
    path = os.path.join(workdir, "eval", "samples.npz")
    if parallel.is_main_process():
        figure = os.path.join(workdir, "eval", "samples.png")
        if is_image_data(exp.data):
            files.save_npz(path, samples=x, images=to_uint8(x), step=step)
            plotting.save_image_grid(x[: config.sample.grid_size], figure)
        else:
            files.save_npz(path, samples=x, step=step)
            data = np.asarray(exp.data.sample(jax.random.PRNGKey(config.eval.seed), n))
            plotting.scatter_over_data(x, data, figure, title=f"{n} samples, step {step}")
        logging.info("Wrote %d samples to %s", n, path)
    return path
