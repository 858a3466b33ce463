"""Classifiers p(y|x) (`classifier.py`): L2 PGD, the pure step; and `--mode=classifier`
(`modes/classifier_mode.py`): training, robust training, saving and loading, clear errors."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import classifier as clf
from fdrl_jax import configlib
from fdrl_jax.data import build_data
from fdrl_jax.data.images import to_unit_range
from fdrl_jax.interop import npz
from fdrl_jax.modes import classifier_mode as mode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_and_batch(n=16):
    model = clf.Classifier(num_classes=10, kind="cnn", features=(8, 16), hidden=32)
    x = jax.random.normal(jax.random.PRNGKey(0), (n, 8, 8, 1))
    y = jnp.arange(n) % 10
    params = model.init(jax.random.PRNGKey(1), x)["params"]
    return (lambda p, z: model.apply({"params": p}, z)), params, x, y


def test_project_l2_scales_into_the_ball_and_keeps_the_inside():
    d = jnp.stack([jnp.full((4, 4, 1), 1.0), jnp.full((4, 4, 1), 0.01)])  # norms 4 and 0.04
    out = clf.project_l2(d, 0.5)
    norms = jnp.sqrt(jnp.sum(out**2, axis=(1, 2, 3)))
    np.testing.assert_allclose(norms, [0.5, 0.04], rtol=1e-6)
    np.testing.assert_allclose(out[0] / out[0, 0, 0, 0], jnp.ones((4, 4, 1)))  # direction kept


def test_pgd_stays_in_the_eps_ball_and_increases_the_loss():
    apply_fn, params, x, y = _model_and_batch()
    loss = lambda z: clf.cross_entropy(apply_fn(params, z), y)  # noqa: E731
    eps = 0.7
    x_adv = clf.l2_pgd(loss, x, eps, steps=10, step_size=clf.default_step_size(eps, 10))
    norms = np.sqrt(np.sum(np.square(np.asarray(x_adv - x)), axis=(1, 2, 3)))
    assert np.all(norms <= eps * (1 + 1e-5))
    assert np.all(norms > 0.5 * eps)  # it used the budget
    assert np.all(np.asarray(loss(x_adv)) > np.asarray(loss(x)))  # every sample got worse


def test_train_step_is_pure_and_lowers_the_loss():
    import optax

    apply_fn, params, x, y = _model_and_batch()
    tx = optax.adam(1e-2)
    opt = tx.init(params)
    step = jax.jit(lambda p, o: clf.train_step(p, o, x, y, apply_fn=apply_fn, tx=tx, adv_eps=0.5))
    p1, o1, m1 = step(params, opt)
    p1b, _, _ = step(params, opt)  # same inputs, same outputs
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p1b), strict=True):
        np.testing.assert_array_equal(a, b)
    p, o = p1, o1
    for _ in range(30):
        p, o, m = step(p, o)
    assert float(m["loss"]) < float(m1["loss"])


def _digits_config(tmp_path, **classifier):
    config = configlib.load_config(os.path.join(ROOT, "configs", "digits.py"))
    config.classifier.update({"num_steps": 300, "path": str(tmp_path / "clf.npz"), **classifier})
    return config


@pytest.mark.slow
def test_the_mode_trains_saves_and_loads_and_adversarial_training_is_more_robust(tmp_path):
    """300 steps on the 8×8 digits, clean and adversarial (L2 PGD, ε = 1): each saved with its
    held-out accuracies and loaded back; the adversarially trained one is the more robust."""
    data = build_data(_digits_config(tmp_path).data)
    accs = {}
    for name, eps in (("clean", 0.0), ("robust", 1.0)):
        config = _digits_config(tmp_path, adv_eps=eps, adv_steps=3, path=str(tmp_path / name))
        result = mode.classifier_mode(config, str(tmp_path))
        assert result["num_classes"] == 10 and result["num_heldout"] == 180
        with open(tmp_path / f"{name}.json") as f:
            assert json.load(f) == result
        apply_fn, params = mode.load_classifier(config.classifier, str(tmp_path / name) + ".npz")
        if eps == 0:
            assert result["heldout_accuracy"] > 0.85 and "heldout_adv_accuracy" not in result
            x, y = to_unit_range(data.images), data.labels
            assert clf.accuracy(apply_fn, params, x, y) > 0.85
        else:
            assert 0 < result["heldout_adv_accuracy"] <= result["heldout_accuracy"]
        x, y = to_unit_range(data.images[:300]), data.labels[:300]
        accs[name] = clf.accuracy(apply_fn, params, x, y, adv_eps=1.0, adv_steps=5)
    assert accs["robust"] > accs["clean"] + 0.1, accs


def test_unlabelled_data_is_a_clear_error(tmp_path):
    config = configlib.load_config(os.path.join(ROOT, "configs", "digits.py") + ":smoke")
    config.data.name = "synthetic"
    with pytest.raises(ValueError, match="labelled images"):
        mode.classifier_mode(config, str(tmp_path))


def test_loading_something_else_is_a_clear_error(tmp_path):

    npz.save_params(str(tmp_path / "x.npz"), {"dense": {"kernel": np.zeros((2, 2))}})
    with pytest.raises(ValueError, match="logits"):
        mode.load_classifier(configlib.default_config().classifier, str(tmp_path / "x.npz"))
    with pytest.raises(FileNotFoundError):
        mode.load_classifier(configlib.default_config().classifier, str(tmp_path / "none.npz"))


def test_default_path_is_in_the_workdir(tmp_path):
    config = configlib.default_config()
    assert mode.classifier_path(config, "/w") == os.path.join("/w", "classifier", "params.npz")
