"""Unpaired translation on CPU: scikit-learn digits (A) -> bold digits (B), 8×8.

`fdrl_jax.data.pairs.digits_pair("data/digits_pair")` writes the pair: A is half of the 1,797
digits as they are, B the other half with strokes one pixel wider (a 1×2 grey dilation; the
two domains hold different images), 100 of each held out as testA / testB. Training is
Algorithm 1 with the dataset prior (A) and the digits recipe of `configs/digits.py` (MLP
estimator, LSIF-χ², K = 50, η = 1, no flips); translation runs K + 10% = 55 steps.

    python -c "from fdrl_jax.data import pairs; pairs.digits_pair('data/digits_pair')"
    python -m fdrl_jax.main --config=configs/digits_translate.py --workdir=runs/digits_translate
    python -m fdrl_jax.main --config=configs/digits_translate.py --workdir=runs/digits_translate \
      --mode=translate

Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`), `smoke` (the built-in digits on both sides, seconds); `paper` is an error
(not an experiment of the paper).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice

ROOT = "data/digits_pair"
IMAGE = {"size": 8, "channels": 1, "flip": False}


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    configlib.no_paper_settings(arg, "thin -> bold digits is")
    c = configlib.image_config()
    c.data.update(name="npz", path=f"{ROOT}/trainB.npz", **IMAGE)
    c.prior.name = "dataset"
    c.prior.source.update(name="npz", path=f"{ROOT}/trainA.npz", **IMAGE)
    c.prior.clip = False  # as the reference: the dequantised source images are not clamped
    c.model.update(name="mlp", hidden=256, arch="")
    c.flow.num_steps, c.flow.kappa, c.flow.eta = 50, 5, 1.0
    c.train.num_steps, c.optim.decay_steps = 6_000, (4_000, 5_000)
    c.train.checkpoint_every, c.train.sample_every = 1_000, 1_000
    c.sample.num_samples, c.eval.num_samples = 1_000, 1_000
    c.translate.num_steps, c.translate.input = 55, f"{ROOT}/testA.npz"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)
        c.data.name = c.prior.source.name = "digits"  # the built-in digits on both sides
        c.translate.update(input="", num_steps=4, num_images=16)
    return c
