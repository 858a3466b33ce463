"""The fitting loop of the auxiliary models: GANs, classifiers, DGflow's corrector.

`fit` runs a jitted step function a fixed number of times from a state held in memory and logs
its metrics. FDRL's own training loop (`modes/train_mode.py`) is a different thing on purpose: it
resumes from checkpoints, stops cleanly on preemption signals and guards against divergence,
which these minute-long fits do not need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from absl import logging

State = TypeVar("State")


def fit(
    step: Callable[[State, int], tuple[State, dict[str, Any]]],
    state: State,
    num_steps: int,
    *,
    log_every: int = 0,
    name: str = "fit",
) -> State:
    """state ← step(state, i) for i = 0 .. num_steps − 1; every `log_every` steps (and at the
    last) logs the step's metrics (0: no logging)."""
    t0 = time.time()
    for i in range(num_steps):
        state, metrics = step(state, i)
        if log_every and ((i + 1) % log_every == 0 or i + 1 == num_steps):
            shown = "  ".join(f"{k} {float(v):.4g}" for k, v in metrics.items())
            logging.info(
                "%s step %d/%d  %s  (%.0f s)", name, i + 1, num_steps, shown, time.time() - t0
            )
    return state
