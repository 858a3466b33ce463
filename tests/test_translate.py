"""Unpaired translation: the dataset prior, the offline pairs, and --mode=translate."""

import io
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import configlib, run, translate
from fdrl_jax.data import ImageData, pairs
from fdrl_jax.experiment import build_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "digits_translate.py")


def test_content_kept_is_one_for_identity_and_about_half_for_unrelated():
    x = np.random.default_rng(0).normal(size=(400, 8, 8, 1))
    assert translate.content_kept(x, x) == 1.0
    y = np.random.default_rng(1).normal(size=x.shape)
    assert 0.4 < translate.content_kept(x, y) < 0.6


def test_digits_pair_splits_the_digits_into_two_domains(tmp_path):
    counts = pairs.digits_pair(str(tmp_path))
    assert counts == {"trainA": 798, "testA": 100, "trainB": 799, "testB": 100}
    from fdrl_jax.data.images import load_digits_images

    x, _ = load_digits_images()
    with np.load(tmp_path / "trainA.npz") as a, np.load(tmp_path / "trainB.npz") as b:
        xa, xb = a["images"], b["images"]
    assert xa.dtype == np.uint8 and xa.shape[1:] == (8, 8, 1)
    # A images are untouched digits; B images are bolder (more ink), and none is the bold
    # version of an A image.
    assert xa.mean() < xb.mean()
    bold_a = {pairs.bold(im[None])[0].tobytes() for im in xa}
    assert not bold_a & {im.tobytes() for im in xb}
    assert {im.tobytes() for im in xa} <= {im.tobytes() for im in x}


def test_dataset_prior_draws_source_images_inside_jit():
    config = configlib.load_config(CONFIG + ":smoke")
    exp = build_experiment(config)
    assert isinstance(exp.prior, ImageData) and exp.prior.shape == (8, 8, 1)
    x = jax.jit(lambda p, k: p.sample(k, 5))(exp.prior, jax.random.PRNGKey(0))
    assert x.shape == (5, 8, 8, 1) and float(jnp.abs(x).max()) < 1.3  # [-1, 1] + noise


def test_dataset_prior_errors_name_the_section():
    config = configlib.load_config(CONFIG + ":smoke")
    config.prior.source.size = 6  # 8×8 digits cropped to 6×6: not the data's shape
    config.prior.source.name = "synthetic"
    with pytest.raises(ValueError, match=r"prior.source.size"):
        build_experiment(config)
    config.prior.source.name = "npz"
    config.prior.source.path = "/nonexistent.npz"
    with pytest.raises(FileNotFoundError, match="prior.source"):
        build_experiment(config)
    config.prior.source.name = "swissroll"
    with pytest.raises(ValueError, match="prior.source.name"):
        build_experiment(config)


@pytest.mark.slow
def test_translate_a_tiny_digits_pair(tmp_path, monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from fdrl_jax.evaluation import features as feature_nets

    root, workdir = str(tmp_path / "pair"), str(tmp_path / "run")
    pairs.digits_pair(root)
    config = configlib.load_config(CONFIG)
    config.data.path = f"{root}/trainB.npz"
    config.prior.source.path = f"{root}/trainA.npz"
    # With the reference's (PyTorch) initialisation the estimator needs a few hundred steps
    # before the flow carries most images across (measured: 0.35 at 200 steps, 0.88 at 600).
    config.train.num_steps, config.train.checkpoint_every = 600, 600
    run.train(config, workdir)

    # FID with a stand-in feature network (the Inception weights are not shipped).
    features = lambda x: jnp.asarray(x, jnp.float32).reshape(len(x), -1)[:, ::4]  # noqa: E731
    monkeypatch.setattr(feature_nets, "make_inception_feature_fn", lambda **kw: features)
    config.translate.update(
        {"input": f"{root}/testA.npz", "target": f"{root}/testB.npz", "grid_size": 12}
    )
    result = run.translate(config, workdir)
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

    # The same translation with the batch sharded over 4 (simulated) devices.
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(
        os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4"
    )
    args = [
        f"--config={CONFIG}",
        f"--workdir={workdir}",
        "--mode=translate",
        f"--config.data.path={root}/trainB.npz",
        f"--config.prior.source.path={root}/trainA.npz",
        "--config.train.num_steps=200",
        "--config.train.checkpoint_every=200",
        f"--config.translate.input={root}/testA.npz",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "fdrl_jax.main", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(os.path.join(out, "translated.npz")) as z:
        np.testing.assert_allclose(z["translated"], translated, rtol=1e-4, atol=1e-4)


def test_cifar_pair_filters_two_classes(tmp_path):
    from PIL import Image

    def jpeg_blob(images):
        chunks = []
        for im in images:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="JPEG")
            chunks.append(np.frombuffer(buf.getvalue(), np.uint8))
        offsets = np.r_[0, np.cumsum([len(c) for c in chunks])]
        return np.concatenate(chunks), offsets

    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["airplane", "cat", "dog"])}
    for split, n in (("train", 9), ("test", 6)):
        arrays[f"{split}_jpeg"], arrays[f"{split}_offsets"] = jpeg_blob(
            rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8)
        )
        arrays[f"{split}_labels"] = (np.arange(n) % 3).astype(np.uint8)
    np.savez(tmp_path / "c.npz", **arrays)
    counts = pairs.cifar_pair(str(tmp_path / "c.npz"), str(tmp_path / "pair"))
    assert counts == {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2}
    with np.load(tmp_path / "pair" / "trainB.npz") as z:
        assert z["images"].shape == (3, 32, 32, 3) and set(z["class_labels"]) == {2}
    with pytest.raises(ValueError, match="no class 'horse'"):
        pairs.cifar_pair(str(tmp_path / "c.npz"), str(tmp_path / "p2"), "horse")
