"""Swiss roll (sklearn make_swiss_roll, noise 0.25, divided by 7.5).

Trains with `configlib.cpu_toy_settings` (minutes on a CPU); the argument `spec` keeps the
SPEC's settings instead. Also `lsif-chi2`, `lr-kl`, `lr-js`, `lr-logd` and `smoke`,
comma-separated: `--config=configs/swissroll.py:lr-kl,spec`.
"""

from fdrl_jax.configlib import toy_config


def get_config(arg: str | None = None):
    return toy_config("swissroll", arg)
