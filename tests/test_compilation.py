"""The flow's programs on CPU compile with XLA's own convolutions (`compilation.py`), and
compute what XLA's default (YNNPACK) convolutions compute, to float32 rounding."""

import os

import jax
import numpy as np
from helpers import ROOT

from fdrl_jax import compilation, configlib, trainer
from fdrl_jax.experiment import build_experiment


def test_the_train_step_uses_xla_convolutions_and_computes_the_same_step(monkeypatch):
    c = configlib.load_config(os.path.join(ROOT, "configs", "digits.py:smoke"))
    c.model.arch, c.model.stem, c.model.stages = "", 8, ((8, 1, 1), (16, 1, 2))
    c.train.batch_size, c.flow.num_steps = 8, 3
    exp = build_experiment(c)
    data = trainer.batches(exp).get(0)
    assert compilation.compiler_options() == compilation.CPU_OPTIONS
    runs = {}
    for name in ("package", "xla"):
        if name == "xla":  # XLA's defaults: YNNPACK's convolutions
            monkeypatch.setattr(compilation, "compiler_options", lambda: None)
        step = trainer.make_train_step(exp)
        text = step.lower(trainer.initial_state(exp), data).compile().as_text()
        state, metrics = step(trainer.initial_state(exp), data)
        runs[name] = text, jax.device_get((state.params, metrics))
    assert "__ynn_fusion" in runs["xla"][0]  # the default the package turns off
    assert "__ynn_fusion" not in runs["package"][0]
    package, xla = (jax.tree.leaves(runs[name][1]) for name in ("package", "xla"))
    for a, b in zip(package, xla, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
