"""25 Gaussians on a 5x5 grid (std 0.05, /2.828), SPEC toy settings.

Variants: `--config=configs/gaussians25.py:lr-kl` (any of lsif-chi2, lr-kl, lr-js, lr-logd) and
`:smoke` (seconds), comma-separated.
"""

from fdrl_jax.configlib import apply_args, default_config


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "25gaussians"
    return apply_args(config, arg)
