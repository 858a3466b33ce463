"""CelebA 64² (paper): center crop 140, resize to 64; the celeba64 ResNet; DDP prior (D =
12,288, full covariance: 1.2 GB in float64 while fitting, stored in <workdir>/prior.npz).

Data from TensorFlow Datasets (`celeb_a`), or a folder / .npz of the aligned face images:
`--config.data.name=folder --config.data.path=img_align_celeba/`.
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`); `smoke`; `paper`: training and sampling are the paper's already; `paper` measures
FID as the authors did, with torchvision's Inception-v3 (`eval.feature_net = torchvision`; the
default is the standard TF-FID network).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    c = configlib.image_config()
    c.data.update(name="tfds", tfds_name="celeb_a", crop_first=140, resize=64, size=64, channels=3)
    c.model.arch = "celeba64"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.paper:
        c.eval.feature_net = "torchvision"
    if arg.smoke:
        configlib.smoke(c)
    return c
