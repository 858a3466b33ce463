"""`--mode=translate` (`modes/translate_mode.py`): a model trained on a tiny digits pair moves
the held-out sources to the target domain and keeps their content, with FID against the target
images; the same translation sharded over 4 devices."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import configs, devices
from sklearn.linear_model import LogisticRegression

from fdrl_jax import configlib
from fdrl_jax.data import pairs
from fdrl_jax.evaluation import features as feature_nets
from fdrl_jax.modes.train_mode import train_mode
from fdrl_jax.modes.translate_mode import translate_mode

# configs/digits_translate.py at test size. With the reference's (PyTorch) initialisation the
# estimator needs a few hundred steps before the flow carries most images across (the margins
# over seeds: benchmarks/learning_margin.py --test=translate).
TEST_SIZE = {"train.num_steps": 600, "train.checkpoint_every": 600, "model.hidden": 64}


def stand_in_features(x):
    """FID features of a stand-in network (the Inception weights are not shipped)."""
    return jnp.asarray(x, jnp.float32).reshape(len(x), -1)[:, ::4]


def translate_pair(root: str, workdir: str, seed: int = 0):
    """Train on the pair in `root` (`pairs.digits_pair`) and translate its testA: (config, the
    result, the translations, the share of the sources and of the translations that a
    logistic regression fitted on trainA / trainB calls B)."""
    config = configlib.load_config(configs("digits_translate.py"))
    configlib.override(config, TEST_SIZE)
    config.seed = seed
    config.data.path = f"{root}/trainB.npz"
    config.prior.source.path = f"{root}/trainA.npz"
    train_mode(config, workdir)
    config.translate.update(
        {"input": f"{root}/testA.npz", "target": f"{root}/testB.npz", "grid_size": 12}
    )
    result = translate_mode(config, workdir)
    with np.load(os.path.join(workdir, "eval", "translate", "translated.npz")) as z:
        source, translated = z["source"], z["translated"]

    def flat(path):
        with np.load(path) as z:
            return z["images"].reshape(len(z["images"]), -1) / 127.5 - 1

    xa, xb = flat(f"{root}/trainA.npz"), flat(f"{root}/trainB.npz")
    domain = LogisticRegression(max_iter=2000).fit(
        np.concatenate([xa, xb]), np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    )
    share_b = [domain.predict(x.reshape(len(x), -1)).mean() for x in (source, translated)]
    return config, result, translated, share_b


@pytest.mark.slow
def test_translate_a_tiny_digits_pair(tmp_path, monkeypatch):
    root, workdir = str(tmp_path / "pair"), str(tmp_path / "run")
    pairs.digits_pair(root)
    monkeypatch.setattr(feature_nets, "make_inception_feature_fn", lambda **kw: stand_in_features)
    config, result, translated, (before, after) = translate_pair(root, workdir)
    out = os.path.join(workdir, "eval", "translate")
    assert translated.shape == (100, 8, 8, 1)
    with np.load(os.path.join(out, "translated.npz")) as z:
        assert z["images"].dtype == np.uint8
    assert os.path.exists(os.path.join(out, "before_after.png"))
    with open(os.path.join(out, "translate.json")) as f:
        assert json.load(f) == result
    assert np.isfinite(result["fid"]) and result["num_target_images"] == 100
    # It moved the images toward the target domain and kept their content.
    assert after > before + 0.5, (before, after)
    assert result["content_kept"] >= 0.9

    # The same translation with the batch sharded over 4 devices.
    config.translate.update({"target": ""})
    with devices(4):
        translate_mode(config, workdir)
    with np.load(os.path.join(out, "translated.npz")) as z:
        np.testing.assert_allclose(z["translated"], translated, rtol=1e-4, atol=1e-4)
