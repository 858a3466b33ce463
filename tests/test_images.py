"""The image pipeline: sources, the paper's preprocessing, augmentation, and clear errors."""

import io
import os

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from fdrl_jax import configlib
from fdrl_jax.data import build_data, images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_cfg(**kw):
    c = configlib.default_config().data
    c.update(kw)
    return c


def test_digits_are_the_sklearn_digits_as_8x8_uint8():
    data = build_data(data_cfg(name="digits"))
    assert len(data) == 1797 and data.shape == (8, 8, 1) and data.num_classes == 10
    assert data.images.dtype == np.uint8 and int(data.images.max()) == 255
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(
        np.asarray(data.images[..., 0]) / 255 * 16, load_digits().images, atol=0.04
    )


def test_training_batches_are_flipped_scaled_and_dequantised():
    x = np.zeros((1, 4, 4, 1), np.uint8)
    x[0, :, 0] = 255  # a white left column
    data = images.ImageData(images=jax.numpy.asarray(x), labels=jax.numpy.zeros(1, "int32"))
    b = np.asarray(data.sample(jax.random.PRNGKey(0), 4000))
    left = b[:, :, 0, 0].mean(1)
    flipped = left < 0  # the column moved to the right
    assert 0.45 < flipped.mean() < 0.55
    clean = np.where(flipped[:, None, None, None], b[:, :, ::-1], b)
    target = np.where(np.arange(4) == 0, 1.0, -1.0)[None, None, :, None]
    assert abs(np.std(clean - target) - 0.03) < 0.002  # σ = 0.03 dequantisation, no clamp
    assert abs(np.mean(clean - target)) < 0.002
    # Deterministic for a key.
    np.testing.assert_array_equal(b, np.asarray(data.sample(jax.random.PRNGKey(0), 4000)))


def test_clean_batches_cover_the_set_without_augmentation():
    data = build_data(data_cfg(name="digits"))
    got = np.concatenate(list(data.clean_batches(500)))
    np.testing.assert_allclose(got, np.asarray(data.images) / 127.5 - 1, atol=1e-6)


def test_npz_with_labels_and_resize(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (10, 20, 16, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", images=x, labels=np.arange(10) % 3)
    data = build_data(data_cfg(name="npz", path=str(tmp_path / "d.npz"), resize=8, size=8))
    assert data.shape == (8, 8, 3) and data.num_classes == 3
    np.testing.assert_array_equal(np.asarray(data.labels), np.arange(10) % 3)


def test_jpeg_npz_layout_of_the_shared_cifar_file(tmp_path):
    imgs = images.synthetic_images(3, 32, 3)  # smooth shapes: JPEG keeps them close
    blobs = []
    for im in imgs:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="JPEG", quality=95)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    np.savez(
        tmp_path / "c.npz",
        test_jpeg=np.concatenate(blobs),
        test_offsets=offsets,
        test_labels=np.array([1, 2, 3], np.uint8),
    )
    data = build_data(data_cfg(name="npz", path=str(tmp_path / "c.npz"), split="test"))
    assert data.shape == (32, 32, 3) and len(data) == 3
    assert np.abs(np.asarray(data.images, float) - imgs).mean() < 8  # JPEG is lossy


def _write_png(path, size=(12, 10), colour=128):
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)


def test_folder_with_class_subfolders_and_spec_preprocessing(tmp_path):
    for cls in ("cat", "dog"):
        os.makedirs(tmp_path / cls)
        for i in range(3):
            _write_png(tmp_path / cls / f"{i}.png", size=(30, 20))
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    data = build_data(data_cfg(name="folder", path=str(tmp_path), resize=12, size=8))
    assert data.shape == (8, 8, 3) and len(data) == 6 and data.num_classes == 2
    assert sorted(np.asarray(data.labels).tolist()) == [0, 0, 0, 1, 1, 1]
    grey = build_data(
        data_cfg(name="folder", path=str(tmp_path / "dog"), resize=8, size=8, channels=1)
    )
    assert grey.shape == (8, 8, 1) and int(grey.labels[0]) == -1


def test_preprocessing_order_crop_resize_crop():
    img = Image.fromarray(np.zeros((218, 178, 3), np.uint8))  # a CelebA-sized image
    out = images.preprocess(img, crop_first=140, resize=64, size=64)
    assert out.size == (64, 64)
    out = images.preprocess(Image.fromarray(np.zeros((100, 150, 3), np.uint8)), resize=84, size=64)
    assert out.size == (64, 64)  # cat2dog: shorter side to 84, center crop 64


def test_resize_and_crop_are_torchvisions_on_pil_images():
    """The reference's transforms: Resize(int) scales the shorter side with PIL's bilinear
    filter (antialiased when shrinking) and truncates the longer side, Resize((s, s)) ignores
    the aspect ratio (LSUN Church), CenterCrop rounds its offset."""
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (30, 47, 3), np.uint8)  # H 30, W 47
    img = Image.fromarray(arr)
    out = np.asarray(images.preprocess(img, resize=12))
    assert out.shape == (12, 18, 3)  # int(12 · 47 / 30) = int(18.8)
    np.testing.assert_array_equal(out, np.asarray(img.resize((18, 12), Image.BILINEAR)))
    # Not bicubic, and not a point-sampled bilinear (no antialiasing): both differ here.
    assert not np.array_equal(out, np.asarray(img.resize((18, 12), Image.BICUBIC)))
    assert not np.array_equal(out, np.asarray(img.resize((18, 12), Image.NEAREST)))
    church = np.asarray(images.preprocess(img, resize=16, size=16, keep_aspect=False))
    np.testing.assert_array_equal(church, np.asarray(img.resize((16, 16), Image.BILINEAR)))
    # CenterCrop(12) of a 19-wide image starts at int(round(3.5)) = 4
    narrow = Image.fromarray(arr[:12, :19])
    np.testing.assert_array_equal(np.asarray(images.preprocess(narrow, size=12)), arr[:12, 4:16])
    # The config path: npz images through the church128 config's data section
    church_cfg = configlib.load_config(os.path.join(ROOT, "configs", "church128.py")).data
    assert church_cfg.keep_aspect is False and church_cfg.resize == church_cfg.size == 128


def test_grey_npz_without_a_channel_axis_is_converted_to_rgb_and_says_so(tmp_path, caplog):
    grey = np.random.default_rng(0).integers(0, 256, (5, 6, 6), dtype=np.uint8)  # (N, H, W)
    np.savez(tmp_path / "g.npz", images=grey)
    kept = build_data(data_cfg(name="npz", path=str(tmp_path / "g.npz")))
    assert kept.shape == (6, 6, 1) and "converting" not in caplog.text
    rgb = build_data(data_cfg(name="npz", path=str(tmp_path / "g.npz"), channels=3))
    assert rgb.shape == (6, 6, 3)
    for c in range(3):  # the grey value in every channel, nothing else changed
        np.testing.assert_array_equal(np.asarray(rgb.images)[..., c], grey)
    assert "data.channels = 3: converting 1-channel images to 3" in caplog.text


def test_corrupt_file_is_reported_by_path_or_skipped_and_counted(tmp_path, caplog):
    for i in range(2):
        _write_png(tmp_path / f"{i}.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"broken\.png.*skip_bad_files"):
        build_data(data_cfg(name="folder", path=str(tmp_path)))
    data = build_data(data_cfg(name="folder", path=str(tmp_path), skip_bad_files=True))
    assert len(data) == 2
    assert "Skipped 1 unreadable" in caplog.text


def test_empty_missing_mismatched_and_wrong_channel_data_are_clear_errors(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="No readable images"):
        build_data(data_cfg(name="folder", path=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_data(data_cfg(name="folder", path=str(tmp_path / "nope")))
    os.makedirs(tmp_path / "mixed")
    _write_png(tmp_path / "mixed" / "a.png", size=(8, 8))
    _write_png(tmp_path / "mixed" / "b.png", size=(9, 8))
    with pytest.raises(ValueError, match="differ in size.*data.size"):
        build_data(data_cfg(name="folder", path=str(tmp_path / "mixed")))
    np.savez(tmp_path / "c4.npz", images=np.zeros((2, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        build_data(data_cfg(name="npz", path=str(tmp_path / "c4.npz")))
    np.savez(tmp_path / "f.npz", images=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        build_data(data_cfg(name="npz", path=str(tmp_path / "f.npz")))
    np.savez(tmp_path / "none.npz", images=np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="holds no images"):
        build_data(data_cfg(name="npz", path=str(tmp_path / "none.npz")))
    with pytest.raises(ValueError, match="set --config.data.path"):
        build_data(data_cfg(name="npz"))


def test_resnet_on_vector_data_and_unknown_arch_are_clear_errors():
    from fdrl_jax.experiment import build_experiment

    c = configlib.default_config()
    c.model.name = "resnet"
    with pytest.raises(ValueError, match="needs image data"):
        build_experiment(c)
    c.model.arch = "vgg"
    with pytest.raises(ValueError, match="Unknown ResNet arch 'vgg'"):
        configlib.validate(c)


def test_image_grid_layout():
    from fdrl_jax.evaluation.figures import make_grid

    x = np.stack([np.full((2, 3, 1), i, np.uint8) for i in range(5)])
    g = make_grid(x, ncol=3, pad=1)
    assert g.shape == (2 * 3 + 1, 3 * 4 + 1, 1)
    assert g[1, 1, 0] == 0 and g[1, 5, 0] == 1 and g[4, 1, 0] == 3 and g[4, 9, 0] == 255


def test_ml_collections_dict_is_accepted_by_the_loaders():
    # The loaders read configs with .get (ConfigDict and plain dicts alike).
    data = images.load_images(ml_collections.ConfigDict({"name": "synthetic", "size": 16}))
    assert data.shape == (16, 16, 3)


@pytest.mark.parametrize("reported", [0, 3, 4, 9])  # unknown, too few, exact, too many
def test_tfds_images_are_preprocessed_as_they_stream_into_one_array(monkeypatch, reported):
    # The loader's own logic, with a stand-in for TFDS (the real one: tests/test_tfds.py):
    # LSUN-like mixed sizes, and a split size that TFDS may report wrong or not at all.
    import types

    from fdrl_jax.data import tfds_source

    examples = [
        {"image": np.full((150, 200, 3), 10 * i, np.uint8), "label": i} for i in range(3)
    ] + [{"image": np.full((140, 140, 3), 99, np.uint8), "label": 3}]
    splits = {"train": types.SimpleNamespace(num_examples=reported)} if reported else {}
    builder = types.SimpleNamespace(
        as_dataset=lambda split: examples, info=types.SimpleNamespace(splits=splits)
    )
    fake = types.SimpleNamespace(builder=lambda name, data_dir: builder, as_numpy=iter)
    monkeypatch.setattr(tfds_source, "import_tfds", lambda: fake)
    data = build_data(data_cfg(name="tfds", tfds_name="lsun/church_outdoor", resize=16, size=16))
    assert data.shape == (16, 16, 3) and len(data) == 4
    assert np.asarray(data.labels).tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(np.asarray(data.images)[:, 8, 8, 0], [0, 10, 20, 99])
    with pytest.raises(ValueError, match="differ in size"):
        build_data(data_cfg(name="tfds", tfds_name="lsun/church_outdoor"))


def test_class_filter_keeps_only_the_asked_labels(tmp_path):
    data = build_data(data_cfg(name="digits", classes=(3, 7)))
    labels = np.asarray(data.labels)
    assert set(labels.tolist()) == {3, 7} and len(data) == 183 + 179
    with pytest.raises(ValueError, match="No images of classes"):
        build_data(data_cfg(name="digits", classes=(42,)))
    with pytest.raises(ValueError, match="needs labels"):
        build_data(data_cfg(name="synthetic", classes=(1,)))
    with pytest.raises(ValueError, match="data.classes"):
        c = configlib.default_config()
        c.data.classes = (-1,)
        configlib.validate(c)
