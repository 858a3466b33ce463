"""The density chasm (paper Fig. 2/3): prior q' = N(0, 0.1 I), data p = N(6·1, 0.1 I) in 2D.

`--config.stale_estimator=True` trains the DGflow-style stale estimator (prior vs data, no
flow) for comparison. Arguments (comma-separated): a pairing (`lr-kl`, the default;
`lsif-chi2`, `lr-js`, `lr-logd`); `smoke`; `paper`: what the paper gives, T = 1,000 training
steps (Fig. 3), with the authors' 2D toy settings for what it leaves open (batch 1024, K = 200,
η = 1, lr 5e-5; their decay steps fall after 1k) instead of the measured CPU settings below.
Fig. 2b flows the stale estimator's samples 400 steps: `--config.flow.kappa=200` (K + κ).
"""

import math

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice

# η = 1 overshoots the narrow target (variance 0.1); η = 0.5 crosses the chasm in K = 200
# steps and settles (measured: benchmarks/RESULTS.md).
CPU = {
    "train.num_steps": 2_000,
    "train.batch_size": 512,
    "flow.eta": 0.5,
    "optim.lr": 1e-4,
    "optim.decay_steps": (1_500,),
}


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lr-kl", PAIRINGS), paper=False, smoke=False)
    c = configlib.default_config()
    c.data.name = "chasm"
    c.prior.std = math.sqrt(0.1)
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    c.train.checkpoint_every = 500
    c.train.sample_every = 500
    c.flow.kappa = 0
    if arg.paper:
        c.train.num_steps = 1_000
    else:
        configlib.override(c, CPU)
    if arg.smoke:
        configlib.smoke(c)
    return c
