"""TensorBoard summaries through clu's metric writers: a smoke run's event files hold the
logged scalars (with the values of metrics.jsonl) and the sample grids."""

import glob
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="needs `pip install -e .[tensorboard]`")
pytest.importorskip("clu.metric_writers", reason="needs `pip install -e .[tensorboard]`")

from fdrl_jax import configlib  # noqa: E402
from fdrl_jax.modes.train_mode import train_mode  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCALARS = {"loss", "out_q", "out_p", "grad_norm", "lr", "steps_per_sec"}


def _events(logdir):
    """{tag: {step: value}} from every event file under `logdir` (TF2 summaries are tensors:
    scalars hold a number, images [width, height, PNG bytes...])."""
    found = {}
    for path in glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                found.setdefault(v.tag, {})[event.step] = tf.make_ndarray(v.tensor)
    return found


def test_smoke_run_writes_scalars_and_sample_grids(tmp_path):
    config = configlib.load_config(os.path.join(ROOT, "configs", "digits.py:smoke"))
    train_mode(config, str(tmp_path))
    events = _events(str(tmp_path / "tensorboard"))
    assert SCALARS <= set(events), sorted(events)
    with open(tmp_path / "metrics.jsonl") as f:
        logged = [json.loads(line) for line in f]
    for row in logged:  # every logged step, with the same numbers
        for tag in SCALARS:
            np.testing.assert_allclose(events[tag][row["step"]], row[tag], rtol=1e-6)
    grids = events["samples"]
    assert sorted(grids) == [3, 6]  # sample_every = 3 in the smoke config
    width, height, png = grids[6][:3]
    image = tf.io.decode_png(png).numpy()
    assert image.shape == (int(height), int(width), 3) and image.std() > 0
