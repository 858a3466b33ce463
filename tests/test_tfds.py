"""The real TFDS source on `tfds.testing.mock_data` (no download): the paper's preprocessing of
cifar10, celeb_a and lsun/church_outdoor into a few training steps, labels, and the error for
a dataset that is not prepared. Training without TensorFlow is tested in test_no_tensorflow.py.
"""

import os

import numpy as np
import pytest
from PIL import Image

tfds = pytest.importorskip("tensorflow_datasets", reason="needs `pip install -e .[tfds]`")

from fdrl_jax import configlib  # noqa: E402
from fdrl_jax.data import build_data, images  # noqa: E402
from fdrl_jax.errors import MissingFileError  # noqa: E402
from fdrl_jax.modes.train_mode import train_mode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "cifar10": ("cifar10.py", (32, 32, 3)),
    "celeb_a": ("celeba64.py", (64, 64, 3)),
    "lsun/church_outdoor": ("church128.py", (128, 128, 3)),
}


def _config(name):
    """The dataset's config, smoke-sized, with its TFDS data (smoke swaps in synthetic)."""
    c = configlib.load_config(os.path.join(ROOT, "configs", CONFIGS[name][0]) + ":smoke")
    c.data.name = "tfds"
    assert c.data.tfds_name == name
    c.train.num_steps = 2
    return c


def _raw(name, n):
    """The mock examples as TFDS yields them (mock_data is deterministic)."""
    ds = tfds.load(name, split="train")
    return [ex for _, ex in zip(range(n), tfds.as_numpy(ds), strict=False)]


# As many as the smoke configs' synthetic images: the same programs as test_configs compiles,
# which the shared compilation cache then serves.
NUM = 64


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_mock_tfds_through_spec_preprocessing_into_training(name, tmp_path):
    config = _config(name)
    with tfds.testing.mock_data(num_examples=NUM):
        data = build_data(config.data)
        raw = _raw(name, NUM)
        assert data.shape == CONFIGS[name][1] and len(data) == NUM
        # The paper's preprocessing of each example, as PIL does it (celeb_a: crop 140 -> 64;
        # lsun: the mock's small images of mixed sizes, both sides to 128).
        args = images.preprocess_args(config.data)
        for i in (0, NUM - 1):
            want = np.asarray(images.preprocess(Image.fromarray(raw[i]["image"]), **args))
            np.testing.assert_array_equal(np.asarray(data.images[i]), want)
        if name == "lsun/church_outdoor":
            assert len({ex["image"].shape for ex in raw}) > 1
        state = train_mode(config, str(tmp_path))
    assert int(state.step) == 2
    assert os.path.exists(tmp_path / "samples" / "step_0000002.png")


def test_labels_and_class_filter():
    c = configlib.default_config().data
    c.update(name="tfds", tfds_name="cifar10")
    with tfds.testing.mock_data(num_examples=40):
        labels = [int(ex["label"]) for ex in _raw("cifar10", 40)]
        data = build_data(c)
        np.testing.assert_array_equal(np.asarray(data.labels), labels)
        assert data.num_classes == max(labels) + 1
        keep = (labels[0], labels[1])
        c.classes = keep
        cats = build_data(c)
    assert sorted(np.asarray(cats.labels).tolist()) == sorted(y for y in labels if y in keep)
    assert len(cats) < 40


def test_unprepared_dataset_says_how_to_prepare_it(tmp_path):
    c = configlib.default_config().data
    c.update(name="tfds", tfds_name="cifar10", tfds_data_dir=str(tmp_path))
    # A real, empty data_dir: nothing is downloaded, and the error names the fix.
    fix = r"(?s)not prepared.*tfds build cifar10 --data_dir="
    with pytest.raises(MissingFileError, match=fix):  # printed without a traceback by the CLI
        build_data(c)
    assert os.listdir(tmp_path) in ([], ["cifar10"])  # at most TFDS's empty version folder
