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


@pytest.mark.slow
def test_translate_a_tiny_digits_pair(tmp_path, monkeypatch):
    root, workdir = str(tmp_path / "pair"), str(tmp_path / "run")
    pairs.digits_pair(root)
    config = configlib.load_config(configs("digits_translate.py"))
    config.data.path = f"{root}/trainB.npz"
    config.prior.source.path = f"{root}/trainA.npz"
    # With the reference's (PyTorch) initialisation the estimator needs a few hundred steps
    # before the flow carries most images across (measured: 0.35 at 200 steps, 0.88 at 600).
    config.train.num_steps, config.train.checkpoint_every = 600, 600
    train_mode(config, workdir)

    # FID with a stand-in feature network (the Inception weights are not shipped).
    features = lambda x: jnp.asarray(x, jnp.float32).reshape(len(x), -1)[:, ::4]  # noqa: E731
    monkeypatch.setattr(feature_nets, "make_inception_feature_fn", lambda **kw: features)
    config.translate.update(
        {"input": f"{root}/testA.npz", "target": f"{root}/testB.npz", "grid_size": 12}
    )
    result = translate_mode(config, workdir)
    out = os.path.join(workdir, "eval", "translate")
    with np.load(os.path.join(out, "translated.npz")) as z:
        source, translated = z["source"], z["translated"]
        assert translated.shape == (100, 8, 8, 1) and z["images"].dtype == np.uint8
    assert os.path.exists(os.path.join(out, "before_after.png"))
    with open(os.path.join(out, "translate.json")) as f:
        assert json.load(f) == result
    assert np.isfinite(result["fid"]) and result["num_target_images"] == 100

    # It moved the images toward the target domain and kept their content.
    def flat(path):
        with np.load(path) as z:
            return z["images"].reshape(len(z["images"]), -1) / 127.5 - 1

    xa, xb = flat(f"{root}/trainA.npz"), flat(f"{root}/trainB.npz")
    domain = LogisticRegression(max_iter=2000).fit(
        np.concatenate([xa, xb]), np.r_[np.zeros(len(xa)), np.ones(len(xb))]
    )
    before = domain.predict(source.reshape(100, -1)).mean()
    after = domain.predict(translated.reshape(100, -1)).mean()
    assert after > before + 0.5, (before, after)
    assert result["content_kept"] >= 0.9

    # The same translation with the batch sharded over 4 devices.
    config.translate.update({"target": ""})
    with devices(4):
        translate_mode(config, workdir)
    with np.load(os.path.join(out, "translated.npz")) as z:
        np.testing.assert_allclose(z["translated"], translated, rtol=1e-4, atol=1e-4)
