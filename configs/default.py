"""The base config: the 2D swiss roll with LSIF-χ² at the paper's 2D settings; every field,
its default and its rule are in fdrl_jax/configlib/defaults.py (and mode_sections.py).

Arguments (comma-separated): a pairing (`lsif-chi2`, `lr-kl`, `lr-js`, `lr-logd`); `smoke`;
`paper`: samples after K steps (κ = 0), as the authors' toy code draws them; the defaults'
κ = 20 is the image configs'. With it this is `configs/swissroll.py:paper`.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    c = configlib.default_config()
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.paper:
        c.flow.kappa = 0
    if arg.smoke:
        configlib.smoke(c)
    return c
