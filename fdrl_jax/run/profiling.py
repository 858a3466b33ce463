"""A `jax.profiler` trace of a few training steps (`train.profile_steps`), in the run directory.

The trace of steps `profile_start + 1 .. profile_start + profile_steps` of this run (its first
step compiles, so the default starts after it) goes to `<workdir>/profile/`: an XPlane file
for TensorBoard's profile plugin (`tensorboard --logdir <workdir>/profile`) and a Perfetto
trace (`perfetto_trace.json.gz`, open it at ui.perfetto.dev). The steps run asynchronously,
so the trace starts and stops only once the state of the step before is computed: it holds
whole steps, and the time of the steps traced.
"""

from __future__ import annotations

import os

import jax
from absl import logging

SUBDIR = "profile"


class StepTrace:
    """Call `after_step(i, state)` after the i-th step of the run (i = 1, 2, ...; `start` >= 1);
    use as a context manager, so that a run stopped inside the window still closes its trace."""

    def __init__(self, workdir: str, start: int, num_steps: int):
        self.dir = os.path.join(workdir, SUBDIR)
        self.first, self.last = start, start + num_steps  # traced: first < i <= last
        self.enabled, self.active = num_steps > 0, False

    def after_step(self, iteration: int, state) -> None:
        if not self.enabled:
            return
        if iteration == self.first:
            jax.block_until_ready(state)
            jax.profiler.start_trace(self.dir, create_perfetto_trace=True)
            self.active = True
        elif iteration == self.last and self.active:
            jax.block_until_ready(state)
            self._stop()

    def _stop(self) -> None:
        jax.profiler.stop_trace()
        self.active = False
        logging.info(
            "Profile of steps %d-%d of this run written to %s (TensorBoard: "
            "tensorboard --logdir %s; Perfetto: perfetto_trace.json.gz).",
            self.first + 1,
            self.last,
            self.dir,
            self.dir,
        )

    def __enter__(self) -> StepTrace:
        return self

    def __exit__(self, *exc) -> None:
        if self.active:
            self._stop()
