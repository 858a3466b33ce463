"""`--mode=eval` (`modes/eval_mode.py`): the vector metrics measure what they say (every
score in range, the noise floor indistinguishable from the data, the prior told apart), and on
images FID at every flow length, the paper's figures and the digits scores."""

import os

import numpy as np
from helpers import configs, copy_run

from fdrl_jax import configlib
from fdrl_jax.modes.eval_mode import eval_mode
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
