"""Every shipped config (`configs/*.py`): it loads and validates with each pairing, the toys
share one table of CPU settings for every pairing (`configlib.TOY_CPU`) and their `paper`
argument is the paper's 2D settings and flow, and its smoke variant trains and samples."""

import glob
import os

import jax
import numpy as np
import pytest
from helpers import ROOT, copy_run

from fdrl_jax import configlib
from fdrl_jax.data import IMAGE_SOURCES
from fdrl_jax.experiment import build_experiment
from fdrl_jax.modes.sample_mode import sample_mode
from fdrl_jax.run.checkpoints import restore_for_inference

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
TOYS = ("swissroll.py", "gaussians8.py", "gaussians25.py")


def load(path, arg=None):
    return configlib.load_config(path + (f":{arg}" if arg else ""))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_and_its_pairings_validate(path):
    for arg in (None, "lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
        config = load(path, arg)
        configlib.validate(config)
        if arg:
            assert (config.loss, config.divergence) == configlib.PAIRINGS[arg]
        if config.data.name not in ("tfds", "npz", "folder"):  # their data is not shipped
            build_experiment(config)


@pytest.mark.parametrize("name", TOYS)
def test_the_toys_paper_argument_is_the_papers_2d_settings(name):
    """20k steps of batch 1024, K = 200, η = 1, lr 5e-5 × 0.1 at 5k / 10k / 15k, and samples
    after K steps (κ = 0: the authors' toy code has none); without it, shorter CPU runs."""
    paper, default = load(os.path.join(ROOT, "configs", name), "paper"), configlib.default_config()
    for section in ("train", "optim", "model", "prior"):
        assert paper[section].to_dict() == default[section].to_dict(), section
    assert (paper.flow.num_steps, paper.flow.eta, paper.flow.kappa) == (200, 1.0, 0)
    cpu = load(os.path.join(ROOT, "configs", name))
    assert cpu.train.num_steps < paper.train.num_steps and cpu.flow.kappa == 0


def test_every_toy_pairing_and_point_cloud_gets_the_one_cpu_table():
    """No per-shape or per-pairing values: the three toys resolve to `configlib.TOY_CPU`'s
    values with each pairing (a point cloud trains with a toy file and `data.name=points`)."""
    assert configlib.TOY_CPU["flow.normalise_eta"] is True
    for name in TOYS:
        for arg in ("lsif-chi2", "lr-kl", "lr-js", "lr-logd"):
            flat = configlib.flatten(load(os.path.join(ROOT, "configs", name), arg).to_dict())
            assert {k: flat[k] for k in configlib.TOY_CPU} == configlib.TOY_CPU, (name, arg)
            assert flat["flow.kappa"] == 0


@pytest.mark.parametrize("name", TOYS)
def test_the_paper_argument_and_the_image_configs_keep_the_papers_flow(name):
    paper = load(os.path.join(ROOT, "configs", name), "lr-js,paper")
    assert paper.flow.normalise_eta is False and paper.flow.eta == 1.0
    for path in CONFIGS:
        if load(path).data.name in IMAGE_SOURCES:
            assert load(path).flow.normalise_eta is False, path


SMOKE = [p for p in CONFIGS if os.path.basename(p) != "default.py"]


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKE, ids=os.path.basename)
def test_the_smoke_variant_trains_and_samples(path, smoke_run, tmp_path):
    config, wd = copy_run(smoke_run(os.path.basename(path)), tmp_path)  # trained once
    exp, state = restore_for_inference(config, wd)
    assert int(state.step) == config.train.num_steps
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.ema_variables))
    if config.prior.name == "ddp":  # the fitted prior is stored for later runs
        assert os.path.exists(os.path.join(wd, "prior.npz"))
    with np.load(sample_mode(config, wd)) as z:
        assert z["samples"].shape == (config.sample.num_samples, *exp.shape)
        if config.data.name in IMAGE_SOURCES:
            assert z["images"].dtype == np.uint8
            assert -1.0 <= z["samples"].min() and z["samples"].max() <= 1.0  # clamped
    assert os.path.exists(os.path.join(wd, "eval", "samples.png"))
