"""Every shipped config loads, validates and runs its smoke variant."""

import glob
import importlib.util
import os

import jax
import numpy as np
import pytest

from fdrl_jax import configlib, run
from fdrl_jax.data import IMAGE_SOURCES
from fdrl_jax.experiment import build_experiment
from fdrl_jax.run import evaluate as run_eval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def load(path, arg=None):
    spec = importlib.util.spec_from_file_location("cfg", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(arg)


def is_image(config) -> bool:
    return config.data.name in IMAGE_SOURCES


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_and_its_pairings_validate(path):
    for arg in (None, "lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
        config = load(path, arg)
        configlib.validate(config)
        if config.data.name not in ("tfds", "npz", "folder"):  # their data is not shipped
            build_experiment(config)


TOY_CONFIGS = [p for p in CONFIGS if not is_image(load(p, "smoke"))]
IMAGE_CONFIGS = [p for p in CONFIGS if is_image(load(p, "smoke"))]


@pytest.mark.slow
@pytest.mark.parametrize("path", TOY_CONFIGS, ids=os.path.basename)
def test_toy_smoke_variant_trains_and_evaluates(path, tmp_path):
    config = load(path, "smoke")
    state = run.train(config, str(tmp_path))
    assert int(state.step) == config.train.num_steps
    result = run_eval(config, str(tmp_path))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.ema_params))
    # 20 smoke steps train nothing (tests/test_learning.py checks that training does); what is
    # checked here is that eval measures what it says: every score in range, and the noise
    # floor (a second data draw) indistinguishable from the data. Measured on 256 points:
    # c2st 0.46-0.55, precision and recall 0.87-0.99, energy under 0.25 of the prior's.
    for name in ("model_vs_data", "prior_vs_data", "data_vs_data"):
        scores = result[name]
        assert all(np.isfinite(v) for v in scores.values()), (name, scores)
        assert all(0 <= scores[k] <= 1 for k in ("c2st", "precision", "recall")), (name, scores)
    floor, prior = result["data_vs_data"], result["prior_vs_data"]
    assert abs(floor["c2st"] - 0.5) < 0.12, floor
    assert floor["precision"] > 0.75 and floor["recall"] > 0.75, floor
    assert abs(floor["energy_distance"]) < 0.5 * prior["energy_distance"], (floor, prior)


@pytest.mark.slow
@pytest.mark.parametrize("path", IMAGE_CONFIGS, ids=os.path.basename)
def test_image_smoke_variant_trains_resumes_and_samples(path, tmp_path):
    config = load(path, "smoke")
    total, workdir = config.train.num_steps, str(tmp_path)
    with config.unlocked():
        config.train.num_steps = total // 2  # a run that stops halfway ...
    run.train(config, workdir)
    with config.unlocked():
        config.train.num_steps = total  # ... and is resumed
    state = run.train(config, workdir)
    assert int(state.step) == total
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.ema_variables))
    # The resumed run equals an uninterrupted one, spectral-norm state included.
    straight = run.train(config, str(tmp_path / "uninterrupted"))
    for a, b in zip(
        jax.tree.leaves((state.variables, state.ema_variables)),
        jax.tree.leaves((straight.variables, straight.ema_variables)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert os.path.exists(os.path.join(workdir, "samples", f"step_{total:07d}.png"))
    if config.prior.name == "ddp":  # the fitted prior is stored for later runs
        assert os.path.exists(os.path.join(workdir, "prior.npz"))

    path = run.sample(config, workdir)
    with np.load(path) as z:
        n = config.sample.num_samples
        assert z["samples"].shape == (n, *build_experiment(config).shape)
        assert z["images"].dtype == np.uint8
        assert -1.0 <= z["samples"].min() and z["samples"].max() <= 1.0  # clamped
    assert os.path.exists(os.path.join(workdir, "eval", "samples.png"))
    result = run_eval(config, workdir)
    assert result["step"] == total and np.isfinite(result["fid"])
    if config.data.name == "digits":  # scored on the eval samples themselves
        assert result["digits"]["num_samples"] == min(config.eval.num_samples, 1000)
        assert 0 < result["digits"]["mean_max_prob"] <= 1
    assert set(result["fid_vs_flow_length"]) == {str(n) for n in config.eval.fid_lengths} | {
        str(config.flow.num_steps + config.flow.kappa)
    }
    for name in (
        "fid.json",
        "fid_vs_flow_length.png",
        "fid_vs_flow_length.json",
        "flow_strips.png",
        "interpolation.png",
        "prior_samples.png",
        "nearest_pixel.png",
        "nearest_features.png",
        "image_metrics.json",
    ):
        assert os.path.exists(os.path.join(workdir, "eval", name)), name
