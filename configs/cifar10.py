"""CIFAR-10 32² (paper): the cifar10 ResNet (spectral norm on), DDP prior, K = 100, η = 3.

Data from TensorFlow Datasets (`pip install -e .[tfds]`), or any uint8 .npz:
`--config.data.name=npz --config.data.path=cifar10-jpeg.npz` (the JPEG layout is decoded).
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`); `smoke` (synthetic 32² images, seconds on a CPU);
`paper`: training and sampling are the paper's already; `paper` changes what is measured and
guides, as the authors did: FID with torchvision's Inception-v3 (`eval.feature_net =
torchvision`; the default is the standard TF-FID network) and, for `--mode=conditional`, the
robustness library's ResNet-50 as the guide (`classifier.name = robust_resnet50`; give its
converted weights as `classifier.path`);
`uniform`: the paper's FDRL-UP ablation (Table 1): prior U[-1, 1] (not clamped), 120k steps
with lr × 0.1 at 100k and 110k (20k and 10k steps before the end, as for 100k-step runs),
κ = 10.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(
        arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, uniform=False, smoke=False
    )
    c = configlib.image_config()
    c.data.update(name="tfds", tfds_name="cifar10", size=32, channels=3)
    c.model.arch = "cifar10"
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.paper:
        c.eval.feature_net = "torchvision"
        c.classifier.name = "robust_resnet50"
    if arg.uniform:
        c.prior.name, c.prior.clip = "uniform", False
        c.train.num_steps, c.optim.decay_steps = 120_000, (100_000, 110_000)
        c.flow.kappa = 10
    if arg.smoke:
        configlib.smoke(c)
    return c
