"""Checkpoints and the restore every inference mode starts from (`run/checkpoints.py`): a run
saved on 8 devices serves every inference mode on one device with the 8-device outputs (to
float rounding), and a work directory without a checkpoint says to train first."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from helpers import copy_run, devices, leaves_equal

from fdrl_jax import configlib, parallel, trainer
from fdrl_jax.errors import NoCheckpointError
from fdrl_jax.experiment import build_experiment
from fdrl_jax.modes import MODES
from fdrl_jax.run.checkpoints import Checkpointer, restore_for_inference

INFERENCE = ("sample", "eval", "conditional", "translate", "refine")
# The arrays each mode writes (file under eval/, array name), compared across device counts.
OUTPUTS = {
    "sample": ("samples.npz", "samples"),
    "conditional": ("conditional/samples_label3.npz", "samples"),
    "translate": ("translate/translated.npz", "translated"),
    "refine": ("refined.npz", "after"),
}


def _outputs(workdir: str) -> dict:
    out = {}
    for mode, (name, key) in OUTPUTS.items():
        with np.load(os.path.join(workdir, "eval", name)) as z:
            out[mode] = np.asarray(z[key])
    with open(os.path.join(workdir, "eval", "fid.json")) as f:
        out["eval"] = json.load(f)
    return out


def test_every_inference_mode_restores_on_another_device_count(digits_run, tmp_path):
    config, saved = copy_run(digits_run, tmp_path)  # trained on 8 devices
    rng = np.random.default_rng(0)
    to_refine = str(tmp_path / "to_refine.npz")
    np.savez(to_refine, samples=rng.uniform(-1, 1, (6, 8, 8, 1)))
    config.conditional.label = 3
    config.refine.update(source="estimator", input=to_refine, num_steps=3)
    config.eval.figures = False
    moved = str(tmp_path / "moved")
    shutil.copytree(saved, moved, ignore=shutil.ignore_patterns("eval"))
    with devices(8):
        for mode in INFERENCE:
            MODES[mode](config, saved)
    for mode in INFERENCE:  # here, on one device
        MODES[mode](config, moved)
    a, b = _outputs(saved), _outputs(moved)
    for mode in OUTPUTS:
        assert a[mode].shape == b[mode].shape and np.all(np.isfinite(b[mode])), mode
        np.testing.assert_allclose(b[mode], a[mode], rtol=1e-4, atol=1e-4, err_msg=mode)
    assert b["eval"].keys() == a["eval"].keys()
    for key, value in a["eval"].items():
        if isinstance(value, float):
            np.testing.assert_allclose(b["eval"][key], value, rtol=1e-3, err_msg=key)


def test_a_workdir_without_a_checkpoint_says_train_first(smoke_config, tmp_path):
    with pytest.raises(NoCheckpointError, match="train first"):
        restore_for_inference(smoke_config, str(tmp_path))


def test_a_checkpoint_holds_the_whole_state_spectral_norm_included(tmp_path):
    c = configlib.default_config()
    c.data.name, c.data.size, c.data.synthetic_count = "synthetic", 8, 16
    c.model.update(name="resnet", arch="", stem=4, stages=((4, 1, 1),), spectral_norm=True)
    exp = build_experiment(c)
    state = trainer.initial_state(exp)
    state = state.replace(ema_stats=jax.tree.map(lambda a: a + 1.0, state.stats))
    assert state.stats and state.ema_stats  # power-iteration vectors, live and EMA
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(7, state)
    restored = ckpt.restore_latest(trainer.state_template(exp, parallel.make_mesh()))
    ckpt.close()
    assert leaves_equal(restored, state) and int(restored.step) == 0
