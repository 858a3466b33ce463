"""Drivers: what `python -m fdrl_jax.main --mode=...` runs, one module per mode, plus the run
directory (`workdir`), checkpoints and figures they share. Each mode is a function
`(config, workdir) -> result`; `MODES` maps the `--mode` names to them.

Drivers import the library below them (the pure core and `experiment` / `configlib`); nothing
in the library imports a driver.
"""

from fdrl_jax.errors import DivergenceError
from fdrl_jax.run.checkpoints import restore_for_inference
from fdrl_jax.run.classifier_training import classifier
from fdrl_jax.run.conditional_sampling import conditional
from fdrl_jax.run.evaluation import evaluate
from fdrl_jax.run.gan_training import gan
from fdrl_jax.run.refinement import refine
from fdrl_jax.run.sampling import sample
from fdrl_jax.run.training import train
from fdrl_jax.run.translation import translate
from fdrl_jax.run.workdir import warn_if_config_differs

MODES = {
    "train": train,
    "sample": sample,
    "eval": evaluate,
    "gan": gan,
    "refine": refine,
    "classifier": classifier,
    "conditional": conditional,
    "translate": translate,
}

__all__ = [
    "MODES",
    "DivergenceError",
    "classifier",
    "conditional",
    "evaluate",
    "gan",
    "refine",
    "restore_for_inference",
    "sample",
    "train",
    "translate",
    "warn_if_config_differs",
]
