"""25 Gaussians on a 5×5 grid at 2·{-2..2} (std 0.05), divided by 2.828.

Trains with `configlib.cpu_toy_settings` (minutes on a CPU); the argument `spec` keeps the
SPEC's settings instead. Also `lsif-chi2`, `lr-kl`, `lr-js`, `lr-logd` and `smoke`,
comma-separated: `--config=configs/gaussians25.py:lr-kl,spec`.
"""

from fdrl_jax.configlib import toy_config


def get_config(arg: str | None = None):
    return toy_config("25gaussians", arg)
