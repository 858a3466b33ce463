"""TensorBoard summaries of a training run in `<workdir>/tensorboard/`, written through clu's
metric writers where TensorFlow, tensorboard and clu are installed (`pip install -e
.[tensorboard]`); without them training runs the same and writes none (metrics.jsonl,
metrics.png and samples/ hold the same numbers and grids).

Scalars: everything the run logs (loss, out_q, out_p, grad_norm, flow_dist, lr,
steps_per_sec; the loop writes them with the writer's `write_scalars`); images: the
training-time sample grid (or the 2D scatter plot), as `samples`.
"""

from __future__ import annotations

import io
import os

import numpy as np
from absl import logging
from etils import epath
from PIL import Image

from fdrl_jax.data.tfds_source import import_tensorflow

SUBDIR = "tensorboard"


def open_writer(workdir: str):
    """A clu `SummaryWriter` on `<workdir>/tensorboard`, or None where TensorFlow, tensorboard
    or clu is missing. TensorFlow is imported here (and by the TFDS source) only, and kept off
    the accelerators."""
    try:
        import_tensorflow()
        from clu import metric_writers
    except ImportError as e:
        logging.info(
            "No TensorBoard summaries (%s); `pip install -e .[tensorboard]` adds them. "
            "metrics.jsonl and samples/ hold the same numbers and grids.",
            e,
        )
        return None
    return metric_writers.SummaryWriter(os.path.join(workdir, SUBDIR))


def write_image_file(writer, step: int, name: str, path: str) -> None:
    """A PNG the run saved (a sample grid or scatter plot), as an image summary. `path` may be
    in a bucket (gs://...), as the work directory may."""
    with Image.open(io.BytesIO(epath.Path(path).read_bytes())) as img:
        x = np.asarray(img.convert("RGB"), np.uint8)
    writer.write_images(step, {name: x[None]})
    writer.flush()
