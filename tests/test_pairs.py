"""Image domains for translation (`data/pairs.py`): the offline digits and CIFAR-10 pairs, and
the source images as translation starts from them."""

import io

import jax
import numpy as np
import pytest

from fdrl_jax.data import pairs
from fdrl_jax.data.images import load_digits_images


def test_digits_pair_splits_the_digits_into_two_domains(tmp_path):
    counts = pairs.digits_pair(str(tmp_path))
    assert counts == {"trainA": 798, "testA": 100, "trainB": 799, "testB": 100}
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


def test_sources_are_scaled_and_mirrored_without_noise():
    x = np.zeros((400, 2, 2, 1), np.uint8)
    x[:, :, 0] = 255  # a white left column
    out = np.asarray(pairs.prepare_source(x, jax.random.PRNGKey(0), flip=True))
    assert set(np.unique(out)) == {-1.0, 1.0}  # [-1, 1], no dequantisation noise
    mirrored = out[:, 0, 0, 0] < 0
    assert 0.4 < mirrored.mean() < 0.6
    kept = np.asarray(pairs.prepare_source(x, jax.random.PRNGKey(0), flip=False))
    np.testing.assert_array_equal(kept[:, :, 0], 1.0)
