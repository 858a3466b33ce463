"""CIFAR-10 32² (paper): the cifar10 ResNet (spectral norm on), DDP prior, K = 100, η = 3.

Data from TensorFlow Datasets (`pip install -e .[tfds]`), or any uint8 .npz:
`--config.data.name=npz --config.data.path=cifar10-jpeg.npz` (the JPEG layout is decoded).
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`), `smoke` (synthetic 32² images, seconds on a CPU).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), smoke=False)
    c = configlib.image_config()
    c.data.update(name="tfds", tfds_name="cifar10", size=32, channels=3)
    c.model.arch = "cifar10"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)
    return c
