"""Training where TensorFlow is not installed (as on GPU images that lack it): a smoke run in a
subprocess whose imports of tensorflow* fail, and the errors that say what to install."""

import os
import subprocess
import sys

import helpers
import pytest

from fdrl_jax import configlib
from fdrl_jax.data import build_data
from fdrl_jax.errors import MissingDependencyError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_training_runs_with_tensorflow_unimportable(tmp_path):
    env = helpers.env(devices=1)  # TensorFlow made unimportable (tests/without_tensorflow)
    probe = "import importlib.util as u; assert not u.find_spec('tensorflow'); import tensorflow"
    check = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert "ModuleNotFoundError" in check.stderr, check.stderr  # the blocker works
    wd = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fdrl_jax.main",
            "--config=configs/digits.py:smoke",
            f"--workdir={wd}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.isdir(wd / "checkpoints" / "6")
    assert (wd / "samples" / "step_0000006.png").exists()
    assert not (wd / "tensorboard").exists()
    assert "No TensorBoard summaries" in proc.stderr


def test_tfds_source_without_tensorflow_says_what_to_install(monkeypatch):
    for name in ("tensorflow", "tensorflow_datasets"):
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
    c = configlib.default_config().data
    c.update(name="tfds", tfds_name="cifar10")
    with pytest.raises(MissingDependencyError, match=r"pip install -e \.\[tfds\]"):
        build_data(c)
