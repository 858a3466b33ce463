"""8 Gaussians on a circle of radius 2 (std 0.02, /1.414), SPEC toy settings.

Variants: `--config=configs/gaussians8.py:lr-kl` (any of lsif-chi2, lr-kl, lr-js, lr-logd) and
`:smoke` (seconds), comma-separated.
"""

from fdrl_jax.configlib import apply_args, default_config


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "8gaussians"
    return apply_args(config, arg)
