"""`--mode=conditional` (`modes/conditional_mode.py`): samples of every asked class composed
with the run's classifier, with per-class files and grids, and clear errors."""

import json
import os
import shutil

import numpy as np
import pytest
from helpers import copy_run

from fdrl_jax.modes.conditional_mode import conditional_mode


def test_conditional_mode_writes_per_class_outputs(digits_run, tmp_path):
    config, workdir = copy_run(digits_run, tmp_path)
    config.conditional.update({"num_samples": 6, "grid_size": 3, "label": 3})
    result = conditional_mode(config, workdir)
    out = os.path.join(workdir, "eval", "conditional")
    assert list(result["per_label"]) == ["3"]
    assert result["flow_steps"] == config.flow.num_steps + 10  # the reference's K + 10
    with np.load(os.path.join(out, "samples_label3.npz")) as z:
        assert z["samples"].shape == (6, 8, 8, 1) and z["images"].dtype == np.uint8
        assert int(z["label"]) == 3
    config.conditional.label = -1
    result = conditional_mode(config, workdir)
    assert sorted(result["per_label"], key=int) == [str(y) for y in range(10)]
    for y in range(10):
        assert os.path.exists(os.path.join(out, f"grid_label{y}.png"))
    assert os.path.exists(os.path.join(out, "grid_all.png"))
    with open(os.path.join(out, "metrics.json")) as f:
        assert "digits_logreg_accuracy" in json.load(f)["per_label"]["0"]
    config.conditional.label = 10
    with pytest.raises(ValueError, match="10 classes"):
        conditional_mode(config, workdir)
    shutil.rmtree(os.path.join(workdir, "classifier"))
    with pytest.raises(FileNotFoundError, match="mode=classifier"):
        conditional_mode(config, workdir)
