"""LSUN Church outdoor 128² (paper): resize both sides to 128 (the aspect ratio is not kept,
as in the reference), center crop 128; the church128 ResNet.

D = 49,152, where a full covariance alone is 9.7 GB, so the data-dependent prior uses the
low-rank + diagonal form (top 512 principal directions and the residual variance per pixel).
Data from TensorFlow Datasets (`lsun/church_outdoor`), or a folder / .npz of the images.
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`), `smoke`.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), smoke=False)
    c = configlib.image_config()
    c.data.update(
        name="tfds",
        tfds_name="lsun/church_outdoor",
        resize=128,
        keep_aspect=False,
        size=128,
        channels=3,
    )
    c.model.arch = "church128"
    c.prior.form, c.prior.rank = "lowrank", 512
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)
    return c
