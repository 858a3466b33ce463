"""`--mode=eval` (`modes/eval_mode.py`): the vector metrics measure what they say (every
score in range, the noise floor indistinguishable from the data, the prior told apart), and on
images FID at every flow length, the paper's figures and the digits scores; FID statistics of
another feature network than the config's are refused."""

import os

import numpy as np
import pytest
from helpers import configs, copy_run

from fdrl_jax import configlib
from fdrl_jax.errors import ConfigError
from fdrl_jax.evaluation import fid
from fdrl_jax.modes.eval_mode import eval_mode, reference_statistics
from fdrl_jax.modes.train_mode import train_mode


def test_vector_eval_measures_what_it_says(tmp_path):
    config = configlib.load_config(configs("gaussians8.py:lr-js,smoke"))
    wd = str(tmp_path)
    train_mode(config, wd)  # 20 smoke steps train nothing: the scores are checked, not the model
    result = eval_mode(config, wd)
    for name in ("model_vs_data", "prior_vs_data", "data_vs_data"):
        scores = result[name]
        assert set(scores) == {"energy_distance", "sliced_w2", "c2st", "precision", "recall"}
        assert all(np.isfinite(v) for v in scores.values()), (name, scores)
        assert all(0 <= scores[k] <= 1 for k in ("c2st", "precision", "recall")), (name, scores)
    # On 256 points: the two-sample test tells the prior from the 8 Gaussians (0.81 measured)
    # and not a second data draw (c2st 0.46-0.55, precision and recall 0.87-0.99, energy under
    # 0.25 of the prior's).
    floor, prior = result["data_vs_data"], result["prior_vs_data"]
    assert prior["c2st"] > 0.7 and abs(floor["c2st"] - 0.5) < 0.12, (floor, prior)
    assert floor["precision"] > 0.75 and floor["recall"] > 0.75, floor
    assert abs(floor["energy_distance"]) < 0.5 * prior["energy_distance"], (floor, prior)
    assert result["modes"]["data"]["modes_covered"] == 8  # the data's own 8 modes
    assert result["flow_steps"] == 12  # K + κ of the smoke
    assert os.path.exists(os.path.join(wd, "eval", "toy_metrics.json"))
    assert os.path.exists(os.path.join(wd, "eval", "toy_eval.png"))


def test_image_eval_scores_every_flow_length_and_draws_the_figures(digits_run, tmp_path):
    config, wd = copy_run(digits_run, tmp_path)
    result = eval_mode(config, wd)
    assert result["step"] == config.train.num_steps and np.isfinite(result["fid"])
    base = config.flow.num_steps + config.flow.kappa
    assert set(result["fid_vs_flow_length"]) == {str(n) for n in (*config.eval.fid_lengths, base)}
    assert result["digits"]["num_samples"] == min(config.eval.num_samples, 1000)
    assert 0 < result["digits"]["mean_max_prob"] <= 1 and "digits_prior" in result
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
        assert os.path.exists(os.path.join(wd, "eval", name)), name
    # Every FID it writes, and the reference statistics it caches, name the feature network
    # (the digits' random stand-in); another network's statistics are refused.
    out = os.path.join(wd, "eval")
    for name in ("fid.json", "fid_vs_flow_length.json", "image_metrics.json"):
        with open(os.path.join(out, name)) as f:
            assert '"feature_net": "random"' in f.read(), name
    cached = [f for f in os.listdir(out) if f.startswith("reference_stats_")]
    assert len(cached) == 1
    assert fid.load_named_statistics(os.path.join(out, cached[0]))[1] == "random"
    config.eval.fid_stats = fid.save_statistics(tmp_path / "s", _stats(), feature_net="inception")
    with pytest.raises(ConfigError, match="'inception' feature network.*'random'"):
        eval_mode(config, wd)


def _stats(seed: int = 0) -> fid.Statistics:
    return fid.statistics_from_features(np.random.default_rng(seed).normal(size=(20, 4)))


def _eval_config(feature_net: str, fid_stats: str, fid_stats_net: str = ""):
    config = configlib.default_config()
    config.eval.feature_net, config.eval.fid_stats = feature_net, fid_stats
    config.eval.fid_stats_net = fid_stats_net
    return config


def test_eval_refuses_statistics_of_another_feature_network(tmp_path):
    named = fid.save_statistics(tmp_path / "inc", _stats(), feature_net="inception")
    unnamed = fid.save_statistics(tmp_path / "authors_cifar10_stats", _stats())
    wd = str(tmp_path)

    def reference(config):
        return reference_statistics(config, None, None, wd)

    with pytest.raises(ConfigError, match="'inception' feature network.*'torchvision'"):
        reference(_eval_config("torchvision", named))
    with pytest.raises(ConfigError, match="eval.fid_stats_net"):
        reference(_eval_config("torchvision", unnamed))
    with pytest.raises(ConfigError, match="'inception' feature network.*'torchvision'"):
        reference(_eval_config("torchvision", unnamed, fid_stats_net="inception"))
    with pytest.raises(ConfigError, match="leave eval.fid_stats_net empty"):
        reference(_eval_config("inception", named, fid_stats_net="torchvision"))
    # the right network: accepted, named by the file or by the config
    stats, path = reference(_eval_config("inception", named))
    assert path == named and np.array_equal(stats.sigma, _stats().sigma)
    stats, _ = reference(_eval_config("torchvision", unnamed, fid_stats_net="torchvision"))
    assert np.array_equal(stats.mu, _stats().mu)
