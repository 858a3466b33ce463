"""The flow's programs of a convolutional net on CPU compile with XLA's own convolutions
(`compilation.py`), and compute what XLA's default (YNNPACK) convolutions compute, to float32
rounding; an MLP's programs keep XLA's defaults."""

import os
import re

import jax
import numpy as np
from helpers import ROOT

from fdrl_jax import compilation, configlib, trainer
from fdrl_jax.experiment import build_experiment
from fdrl_jax.models import MLP


def library_convolutions(hlo: str) -> int:
    """Convolutions inside the library (YNNPACK) fusions of a compiled program's text."""
    bodies = dict(re.findall(r"^(?:ENTRY )?%?([\w.-]+) [^\n]*\{\n(.*?)\n\}", hlo, re.M | re.S))
    called = re.findall(r'calls=%?([\w.-]+).*"kind":"__ynn_fusion"', hlo)
    return sum(bodies[name].count(" convolution(") for name in called)


def test_the_train_step_uses_xla_convolutions_and_computes_the_same_step(monkeypatch):
    c = configlib.load_config(os.path.join(ROOT, "configs", "digits.py:smoke"))
    # a one-block ResNet of 32 channels (XLA gives YNNPACK no convolution with fewer)
    c.model.name, c.model.arch, c.model.stem, c.model.stages = "resnet", "", 32, ((32, 1, 1),)
    c.train.batch_size, c.flow.num_steps = 8, 3
    exp = build_experiment(c)
    data = trainer.batches(exp).get(0)
    assert compilation.compiler_options(exp.model) == compilation.CPU_OPTIONS
    assert compilation.compiler_options(MLP()) is None  # its dots run faster through YNNPACK
    runs = {}
    for name in ("package", "xla"):
        if name == "xla":  # XLA's defaults: YNNPACK's convolutions
            monkeypatch.setattr(compilation, "compiler_options", lambda model: None)
        step = trainer.make_train_step(exp)
        text = step.lower(trainer.initial_state(exp), data).compile().as_text()
        state, metrics = step(trainer.initial_state(exp), data)
        runs[name] = text, jax.device_get((state.params, metrics))
    assert library_convolutions(runs["xla"][0]) > 0  # the default the package turns off
    assert library_convolutions(runs["package"][0]) == 0
    package, xla = (jax.tree.leaves(runs[name][1]) for name in ("package", "xla"))
    for a, b in zip(package, xla, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
