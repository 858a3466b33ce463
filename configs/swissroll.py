"""Swiss roll (sklearn make_swiss_roll, noise 0.25, /7.5), SPEC toy settings.

Variants: `--config=configs/swissroll.py:lr-kl` (any of lsif-chi2, lr-kl, lr-js, lr-logd) and
`:smoke` (seconds), comma-separated.
"""

from fdrl_jax.configlib import apply_args, default_config


def get_config(arg: str | None = None):
    config = default_config()
    config.data.name = "swissroll"
    return apply_args(config, arg)
