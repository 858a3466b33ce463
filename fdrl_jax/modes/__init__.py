"""What `python -m fdrl_jax.main --mode=NAME` runs: one module per mode, `NAME_mode.py`, with
the function `NAME_mode(config, workdir)`; `MODES` maps the names to those functions.

Modes read the config, build the experiment (`experiment`, `trainer`, `sampler`), run the
library's pure functions and write the run directory through `fdrl_jax.run` (files,
checkpoints, figures, multi-process safety). Nothing below this layer imports a mode.
"""

from fdrl_jax.modes import (
    classifier_mode,
    conditional_mode,
    eval_mode,
    gan_mode,
    refine_mode,
    sample_mode,
    train_mode,
    translate_mode,
)

MODES = {
    "train": train_mode.train_mode,
    "sample": sample_mode.sample_mode,
    "eval": eval_mode.eval_mode,
    "gan": gan_mode.gan_mode,
    "refine": refine_mode.refine_mode,
    "classifier": classifier_mode.classifier_mode,
    "conditional": conditional_mode.conditional_mode,
    "translate": translate_mode.translate_mode,
}

__all__ = ["MODES"]
