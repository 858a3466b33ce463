"""8 Gaussians on a circle of radius 2 (std 0.02), divided by 1.414.

Trains with `configlib.cpu_toy_settings` (minutes on a CPU); the argument `spec` keeps the
SPEC's settings instead. Also `lsif-chi2`, `lr-kl`, `lr-js`, `lr-logd` and `smoke`,
comma-separated: `--config=configs/gaussians8.py:lr-kl,spec`.
"""

from fdrl_jax.configlib import toy_config


def get_config(arg: str | None = None):
    return toy_config("8gaussians", arg)
