"""A checkpoint written on 8 (simulated CPU) devices restores for every inference mode on one
device, and one written on 1 device on 8, computing the same outputs (to float rounding).

The digits smoke config runs all five modes: sample, eval, conditional (with a classifier
trained in the same work directory), translate (its data as the source images) and
refine with the run's estimator. The 8-device side runs in a subprocess
(XLA_FLAGS=--xla_force_host_platform_device_count=8), this process has one device.
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from fdrl_jax import configlib, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("sample", "eval", "conditional", "translate", "refine")
# The arrays each mode writes (file under eval/, array name), compared across device counts.
OUTPUTS = {
    "sample": ("samples.npz", "samples"),
    "conditional": ("conditional/samples_label3.npz", "samples"),
    "translate": ("translate/translated.npz", "translated"),
    "refine": ("refined.npz", "after"),
}

SCRIPT = """
import json, sys
import jax
from fdrl_jax import configlib, run
config = configlib.load_config("configs/digits.py:smoke")
configlib.override(config, json.loads(sys.argv[2]))
assert jax.device_count() == int(sys.argv[4]), jax.devices()
for mode in sys.argv[3].split(","):
    run.MODES[mode](config, sys.argv[1])
"""


def _overrides(workdir_root: str) -> dict:
    return {
        "classifier.num_steps": 20,
        "classifier.hidden": 16,
        "classifier.features": (4,),
        "classifier.adv_eps": 0.0,
        "conditional.num_samples": 4,
        "conditional.label": 3,
        "translate.num_images": 8,
        "translate.num_steps": 3,
        "refine.source": "estimator",
        "refine.input": os.path.join(workdir_root, "to_refine.npz"),
        "refine.num_steps": 3,
        "eval.figures": False,
    }


def _config(overrides: dict):
    config = configlib.load_config(os.path.join(ROOT, "configs", "digits.py") + ":smoke")
    configlib.override(config, overrides)
    return config


def _run(workdir: str, overrides: dict, modes, devices: int) -> None:
    """`modes` run in `workdir` on `devices` devices: here (1) or in a subprocess."""
    if devices == 1:
        assert jax.device_count() == 1
        config = _config(overrides)
        for mode in modes:
            run.MODES[mode](config, workdir)
        return
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            workdir,
            json.dumps(overrides),
            ",".join(modes),
            str(devices),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def _outputs(workdir: str) -> dict:
    out = {}
    for mode, (name, key) in OUTPUTS.items():
        with np.load(os.path.join(workdir, "eval", name)) as z:
            out[mode] = np.asarray(z[key])
    with open(os.path.join(workdir, "eval", "fid.json")) as f:
        out["eval"] = json.load(f)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("saved_on,restored_on", [(8, 1), (1, 8)])
def test_every_inference_mode_restores_on_another_device_count(tmp_path, saved_on, restored_on):
    root = str(tmp_path)
    rng = np.random.default_rng(0)
    np.savez(os.path.join(root, "to_refine.npz"), samples=rng.uniform(-1, 1, (6, 8, 8, 1)))
    overrides = _overrides(root)
    saved = os.path.join(root, "saved")
    # train (and the conditional modes' classifier), then every mode where it was saved
    _run(saved, overrides, ("train", "classifier", *MODES), saved_on)
    moved = os.path.join(root, "moved")
    shutil.copytree(saved, moved, ignore=shutil.ignore_patterns("eval"))
    _run(moved, overrides, MODES, restored_on)
    a, b = _outputs(saved), _outputs(moved)
    for mode in OUTPUTS:
        assert a[mode].shape == b[mode].shape and np.all(np.isfinite(b[mode])), mode
        np.testing.assert_allclose(b[mode], a[mode], rtol=1e-4, atol=1e-4, err_msg=mode)
    assert b["eval"].keys() == a["eval"].keys()
    for key, value in a["eval"].items():
        if isinstance(value, float):
            np.testing.assert_allclose(b["eval"][key], value, rtol=1e-3, err_msg=key)
