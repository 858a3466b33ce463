"""8 Gaussians on a circle of radius 2 (std 0.02), divided by 1.414.

Arguments (comma-separated, e.g. `:lr-kl,paper`): a pairing (`lsif-chi2`, the default;
`lr-kl`, `lr-js`, `lr-logd`); `paper`: the paper's 2D settings (the defaults: 20k steps of
batch 1024, K = 200, η = 1, lr 5e-5 × 0.1 at 5k / 10k / 15k; about an hour on a 2-core CPU)
instead of the CPU settings below; `smoke`: a seconds-long run.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice

# Minutes on a 2-core CPU, to the quality of the paper's settings (benchmarks/RESULTS.md).
# η = 1 overshoots the sharp modes (std 0.014 after scaling): particles scatter or run away.
CPU = {
    "train.num_steps": 6_000,
    "train.batch_size": 512,
    "train.sample_every": 2_000,
    "optim.lr": 5e-5,
    "optim.decay_steps": (4_000, 5_000),
    "flow.num_steps": 200,
}
CPU_ETA = {"lr": 0.1, "lsif": 0.05}  # LSIF's unbounded r makes the flow stiffer


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    c = configlib.default_config()
    c.data.name = "8gaussians"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    c.flow.kappa = 0  # samples after K steps, as the authors' toy code
    if not arg.paper:
        configlib.override(c, {**CPU, "flow.eta": CPU_ETA[c.loss]})
    if arg.smoke:
        configlib.smoke(c)
    return c
