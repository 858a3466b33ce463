"""25 Gaussians on a 5×5 grid at 2·{-2..2} (std 0.05), divided by 2.828.

Arguments (comma-separated, e.g. `:lr-kl,paper`): a pairing (`lsif-chi2`, the default;
`lr-kl`, `lr-js`, `lr-logd`); `paper`: the paper's 2D settings and flow (the defaults: 20k
steps of batch 1024, K = 200, η = 1, lr 5e-5 × 0.1 at 5k / 10k / 15k; about an hour on a
2-core CPU) instead of `configlib.TOY_CPU`, the CPU settings every toy, point cloud and
pairing shares (12k steps of batch 512, K = 100, η = 0.2 / f''(1), lr 2e-4; below); `smoke`:
a seconds-long run.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    c = configlib.default_config()
    c.data.name = "25gaussians"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    c.flow.kappa = 0  # samples after K steps, as the authors' toy code
    if not arg.paper:
        # the same for every shape and pairing, e.g. --config.data.name=points as well:
        # 12k steps of batch 512, lr 2e-4 (× 0.1 at 8k, 10k), K = 100, η = 0.2 divided by
        # f''(1) (flow.normalise_eta), ν = 0.01
        configlib.override(c, configlib.TOY_CPU)
    if arg.smoke:
        configlib.smoke(c)
    return c
