"""CIFAR-10 32² (paper): the cifar10 ResNet (spectral norm on), DDP prior, K = 100, η = 3.

Data from TensorFlow Datasets (`pip install -e .[tfds]`), or any uint8 .npz:
`--config.data.name=npz --config.data.path=cifar10-jpeg.npz` (the JPEG layout is decoded).
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`); `smoke` (synthetic 32² images, seconds on a CPU); `cpu` (below);
`paper`: training and sampling are the paper's already; `paper` changes what is measured and
guides, as the authors did: FID with torchvision's Inception-v3 (`eval.feature_net =
torchvision`; the default is the standard TF-FID network) and, for `--mode=conditional`, the
robustness library's ResNet-50 as the guide (`classifier.name = robust_resnet50`; give its
converted weights as `classifier.path`);
`uniform`: the paper's FDRL-UP ablation (Table 1): prior U[-1, 1] (not clamped), 120k steps
with lr × 0.1 at 100k and 110k (20k and 10k steps before the end, as for 100k-step runs),
κ = 10.

`cpu`: a CPU-scale run (1,000 steps in 27 minutes on one core): 16² images (antialiased bilinear
resize), the cifar10 network narrowed to 32-64 channels with one block per stage (spectral norm
kept), K = 20, κ = 5, Adam 2e-4 held constant for 1,000 steps of batch 64, and FID
of 2,000 samples against 5,000 training images at flow lengths 0 (the prior), 10 and 25. At
this scale the estimator does not yet tell the prior's draws from the data and the flow
overshoots them (benchmarks/RESULTS.md, "CIFAR-10 at 16² on a CPU"): a starting point, not a
result.
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice
from fdrl_jax.errors import ConfigError


def get_config(arg=None):
    arg = configlib.parse_arg(
        arg,
        pairing=choice("lsif-chi2", PAIRINGS),
        paper=False,
        uniform=False,
        cpu=False,
        smoke=False,
    )
    if arg.cpu and (arg.paper or arg.uniform):
        raise ConfigError(
            "cifar10.py: `cpu` is a CPU-scale setting of its own; drop `paper` / `uniform`."
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
