"""CIFAR-10 32² (paper): the cifar10 ResNet (spectral norm on), DDP prior, K = 100, η = 3.

Data from TensorFlow Datasets (`pip install -e .[tfds]`), or any uint8 .npz:
`--config.data.name=npz --config.data.path=cifar10-jpeg.npz` (the JPEG layout is decoded).
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`), `smoke` (synthetic 32² images, seconds on a CPU), `cpu` (below).

`cpu`: a CPU-scale run (about 30 minutes on one core): 16² images (antialiased bilinear
resize), the cifar10 network narrowed to 32-64 channels with one block per stage (spectral norm
kept), K = 20, κ = 5, Adam 2e-4 held constant for 1,000 steps of batch 64, and FID
of 2,000 samples against 5,000 training images at flow lengths 0 (the prior), 10 and 25.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), smoke=False, cpu=False)
    c = configlib.image_config()
    c.data.update(name="tfds", tfds_name="cifar10", size=32, channels=3)
    c.model.arch = "cifar10"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.cpu:
        c.data.update(size=16, resize=16)
        c.model.stem, c.model.stages = 32, ((32, 1, 1), (64, 1, 2), (64, 1, 2), (64, 1, 2))
        c.flow.num_steps, c.flow.kappa = 20, 5
        c.optim.lr, c.optim.decay_steps = 2e-4, ()
        c.train.num_steps, c.train.log_every = 1_000, 25
        c.train.checkpoint_every, c.train.sample_every = 500, 500
        c.eval.num_samples, c.eval.reference_samples = 2_000, 5_000
        c.eval.batch_size, c.eval.fid_lengths = 500, (0, 10, 25)
        c.eval.neighbour_bank = 500  # its Inception features cost ~1 min per 400 images
    if arg.smoke:
        configlib.smoke(c)
    return c
