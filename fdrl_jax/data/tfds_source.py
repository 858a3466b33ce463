"""TensorFlow Datasets as an image source (`data.name = "tfds"`), and the one place TensorFlow
is imported (here and, through `import_tensorflow`, by the TensorBoard writer
`run/summaries.py`). Both are optional: `pip install -e .[tfds]`; every other source, and
training itself, runs where TensorFlow is not installed.

Training reads prepared datasets only and never downloads: an unprepared dataset is an error
that gives the `tfds build` command preparing it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from fdrl_jax.errors import DataError, MissingDependencyError, MissingFileError


def import_tensorflow():
    """TensorFlow (ImportError where it is not installed), kept off the accelerators: it only
    reads files and writes summaries here, and a GPU build would otherwise reserve the GPU's
    memory before JAX does."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # its C++ INFO lines, on every import
    import tensorflow as tf

    for kind in ("GPU", "TPU"):
        try:
            tf.config.set_visible_devices([], kind)
        except (RuntimeError, ValueError):  # already initialised, or no such device type
            pass
    return tf


def import_tfds():
    """tensorflow_datasets (see `import_tensorflow`), or a `MissingDependencyError` saying what
    to install."""
    try:
        import_tensorflow()
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingDependencyError(
            "This dataset comes from TensorFlow Datasets, which is not installed: "
            "`pip install -e .[tfds]` (tensorflow-cpu and tensorflow-datasets), or convert the "
            "images to an .npz / folder and use data.name = 'npz' / 'folder'."
        ) from e
    return tfds


def not_prepared_message(name: str, data_dir: str) -> str:
    where = data_dir or "$TFDS_DATA_DIR or ~/tensorflow_datasets"
    flag = f" --data_dir={data_dir}" if data_dir else ""
    return (
        f"TFDS dataset {name!r} is not prepared in {where}. Training never downloads: prepare "
        f"it once (downloads and converts it), then train:\n  tfds build {name}{flag}\n"
        "(CelebA and LSUN may need their files placed by hand, as `tfds build` says). Or set "
        "--config.data.tfds_data_dir to the directory it was prepared in."
    )


def load_tfds(
    name: str, split: str, data_dir: str, process: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray | None]:
    """A prepared TFDS dataset as uint8 NHWC (+ int32 labels when it has them), each image
    passed through `process` (the data section's preprocessing: uint8 HWC -> uint8 HWC) as it
    streams in, so sets of mixed sizes (LSUN) stack. Where TFDS knows the split's size the set
    is written into one preallocated array (no list of images, no second copy)."""
    tfds = import_tfds()
    builder = tfds.builder(name, data_dir=data_dir or None)
    try:
        ds = builder.as_dataset(split=split)
    except AssertionError as e:  # TFDS's "could not find data in <dir>"
        raise MissingFileError(not_prepared_message(name, data_dir)) from e
    try:
        total = int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, TypeError):
        total = 0
    out, n, labels = None, 0, []
    for ex in tfds.as_numpy(ds):
        x = process(np.asarray(ex["image"]))
        if out is None:
            out = np.empty((max(total, 1), *x.shape), np.uint8)
        if x.shape != out.shape[1:]:
            raise DataError(
                f"TFDS {name!r} images differ in size after preprocessing ({out.shape[1:]} and "
                f"{x.shape}); set data.resize and data.size (e.g. 128 and 128 for LSUN)."
            )
        if n == out.shape[0]:  # size unknown (or more than TFDS said): grow by doubling
            out = np.concatenate([out, np.empty_like(out)])
        out[n] = x
        n += 1
        if "label" in ex:
            labels.append(ex["label"])
    if out is None:
        return np.zeros((0, 1, 1, 1), np.uint8), None
    # Fewer than allocated (TFDS's count was off, or the buffer grew): keep only what was read.
    x = out if n == out.shape[0] else out[:n].copy()
    return x, (np.asarray(labels, np.int32) if labels else None)
