"""Every shipped config loads, validates and runs its smoke variant."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest

from fdrl_jax import train
from fdrl_jax.evaluation import toy_metrics
from fdrl_jax.experiment import build_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def load(path, arg=None):
    spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_and_its_pairings_validate(path):
    for arg in (None, "lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
        build_experiment(load(path, arg))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_smoke_variant_trains_and_evaluates(path, tmp_path):
    config = load(path, "smoke")
    state = train.train(config, str(tmp_path))
    assert int(state.step) == config.train.num_steps
    result = toy_metrics.run_eval(config, str(tmp_path))
    assert np.isfinite(result["model_vs_data"]["energy_distance"])
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.ema_params))
