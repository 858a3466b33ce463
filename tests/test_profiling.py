"""`train.profile_steps`: a jax.profiler trace of a few training steps in the run directory."""

import glob
import gzip
import json
import os

import jax
import jax.numpy as jnp
import pytest

from fdrl_jax.modes.train_mode import train_mode
from fdrl_jax.run.profiling import StepTrace


def _runs_of(workdir: str, module: str) -> int:
    """How many executions of the XLA program `module` the run's Perfetto trace holds."""
    paths = glob.glob(os.path.join(workdir, "profile", "**", "*.xplane.pb"), recursive=True)
    assert paths, "no XPlane file for TensorBoard's profile plugin"
    [path] = glob.glob(
        os.path.join(workdir, "profile", "**", "perfetto_trace.json.gz"), recursive=True
    )
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    return len(
        {
            e["args"]["run_id"]
            for e in events
            if e.get("args", {}).get("hlo_module") == module and "run_id" in e["args"]
        }
    )


def test_trace_holds_the_steps_of_its_window(tmp_path):
    def toy_step(x):
        return jnp.tanh(x @ x)

    step = jax.jit(toy_step)
    x = jnp.ones((64, 64)) / 64
    with StepTrace(str(tmp_path), start=2, num_steps=3) as trace:
        for i in range(1, 8):
            x = step(x)
            trace.after_step(i, x)
    assert _runs_of(str(tmp_path), "jit_toy_step") == 3  # steps 3, 4, 5 of 7


def test_no_trace_unless_asked(tmp_path):
    with StepTrace(str(tmp_path), start=1, num_steps=0) as trace:
        trace.after_step(1, jnp.ones(2))
        trace.after_step(2, jnp.ones(2))
    assert not os.path.exists(tmp_path / "profile")


def test_run_stopped_inside_the_window_closes_its_trace(tmp_path):
    step = jax.jit(lambda x: x + 1)
    x = jnp.zeros(3)
    with StepTrace(str(tmp_path), start=1, num_steps=5) as trace:
        for i in range(1, 4):  # the run ends after step 3
            x = step(x)
            trace.after_step(i, x)
    assert glob.glob(str(tmp_path / "profile" / "**" / "*.xplane.pb"), recursive=True)
    jax.profiler.start_trace(str(tmp_path / "again"))  # no trace left running
    jax.profiler.stop_trace()


@pytest.mark.slow
def test_training_config_writes_a_trace_of_its_steps(smoke_config, tmp_path):
    wd = str(tmp_path / "run")
    smoke_config.train.num_steps = 6
    smoke_config.train.profile_start, smoke_config.train.profile_steps = 2, 3
    train_mode(smoke_config, wd)
    assert _runs_of(wd, "jit_step_fn") == 3
