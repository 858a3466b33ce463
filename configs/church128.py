"""LSUN Church outdoor 128² (paper): resize both sides to 128 (the aspect ratio is not kept,
as in the reference), center crop 128; the church128 ResNet.

D = 128·128·3 = 49,152, where one D×D matrix is 9.7 GB in float32 and 19.3 GB in float64, so
the data-dependent prior is by default the low-rank + diagonal form (top 512 principal
directions and the residual variance per pixel; a measured choice, benchmarks/RESULTS.md).
Data from TensorFlow Datasets (`lsun/church_outdoor`), or a folder / .npz of the images.
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`); `smoke`; `paper`: the full-covariance prior, as the paper and the authors' code
fit it (`prior.form = full`). Its memory: the sampler keeps L = chol(Σ + 1e-4 I) in float32,
9.7 GB on every device and in <workdir>/prior.npz; the fit accumulates Σ in float64 and holds
two D×D float64 arrays at most, 39 GB (counted from the code, not measured), on the
accelerator where there is one (docs/settings.md).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
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
    if arg.paper:
        c.prior.form = "full"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)
    return c
