"""`--mode=sample` (`modes/sample_mode.py`): the samples of the latest checkpoint's EMA
params, restored onto any device count."""

import jax
import numpy as np
from helpers import devices

from fdrl_jax import trainer
from fdrl_jax.experiment import build_experiment
from fdrl_jax.modes.sample_mode import sample_mode
from fdrl_jax.run import checkpoints
from fdrl_jax.sampler import Sampler


def test_sample_mode_draws_with_the_ema_params(smoke_config, tmp_path):
    """A checkpoint saved from one device, sampled on 8."""
    exp = build_experiment(smoke_config)
    state = trainer.initial_state(exp)
    state = state.replace(ema_params=jax.tree.map(lambda p: -p, state.params))  # clearly not
    ckpt = checkpoints.Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(1, state)
    ckpt.close()
    with devices(8):
        path = sample_mode(smoke_config, str(tmp_path))
    with np.load(path) as z:
        got = z["samples"]
    sampler = Sampler(exp)
    key, n = jax.random.PRNGKey(smoke_config.sample.seed), smoke_config.sample.num_samples
    np.testing.assert_allclose(got, sampler(state.ema_variables, key, n), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, sampler(state.variables, key, n), atol=1e-3)
    assert (tmp_path / "eval" / "samples.png").exists()
