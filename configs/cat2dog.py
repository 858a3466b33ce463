"""Cat2dog 64² unpaired translation (paper Sec. 6.5).

Algorithm 1 with the prior replaced by source-domain images (`prior.name = "dataset"`: cats,
flipped and dequantised like data) and the data by the target domain (dogs): the shallow
`cat2dog` ResNet (spectral norm, self-attention at 128 channels), LSIF-χ², K = 100 in training
and 110 at test time, 40k steps with lr × 0.1 at 20k and 30k. Preprocessing: the shorter side
resized to 84, center crop 64. The folders follow the usual layout `<root>/trainA` (cats),
`trainB` (dogs), `testA`, `testB`; the default root is `data/cat2dog`, and each path can be
overridden:

    python -m fdrl_jax.main --config=configs/cat2dog.py --workdir=runs/cat2dog \
      --config.data.path=ROOT/trainB --config.prior.source.path=ROOT/trainA
    python -m fdrl_jax.main --config=configs/cat2dog.py --workdir=runs/cat2dog --mode=translate \
      --config.translate.input=ROOT/testA --config.translate.target=ROOT/testB

Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, ...); `smoke`
(synthetic 64² images, seconds on a CPU); `paper`: both sides of every image resized to 84
(the aspect ratio not kept: the authors' `Resize((84, 84))`, `data.keep_aspect = False` and
`prior.source.keep_aspect = False`), then center crop 64; the same as the default on square
images; `cifar`: CIFAR-10 cat -> dog at 32² from the .npz files that
`fdrl_jax.data.pairs.cifar_pair(".../cifar10-jpeg.npz", "data/cifar_cat2dog")` writes (not in
the paper, so not with `paper`).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice
from fdrl_jax.errors import ConfigError


def get_config(arg=None):
    arg = configlib.parse_arg(
        arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False, cifar=False
    )
    if arg.paper and arg.cifar:
        raise ConfigError(
            "Config arguments `paper` and `cifar` do not combine: CIFAR-10 cat -> dog is not in "
            "the paper (its images are 32² already, nothing to resize); drop one of them."
        )
    root, ext, image = "data/cat2dog", "", {"resize": 84, "size": 64, "channels": 3}
    if arg.cifar:  # CIFAR-10 images are 32² already
        root, ext, image = "data/cifar_cat2dog", ".npz", {"resize": 0, "size": 32, "channels": 3}
    source = "npz" if arg.cifar else "folder"
    c = configlib.image_config()
    c.data.update(name=source, path=f"{root}/trainB{ext}", **image)
    c.prior.name = "dataset"
    c.prior.source.update(name=source, path=f"{root}/trainA{ext}", **image)
    c.prior.clip = False  # as the reference: the dequantised source images are not clamped
    if arg.paper:  # the reference's Resize((84, 84)): both sides, aspect ratio not kept
        c.data.keep_aspect = c.prior.source.keep_aspect = False
    c.model.arch = "cat2dog"
    c.flow.num_steps, c.flow.kappa = 100, 10
    c.train.num_steps, c.optim.decay_steps = 40_000, (20_000, 30_000)
    c.translate.num_steps = 110
    c.translate.update(input=f"{root}/testA{ext}", target=f"{root}/testB{ext}")
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)  # the data become synthetic images; the source follows
        c.prior.source.update(name="synthetic", synthetic_count=48, size=c.data.size, resize=0)
        c.translate.update(input="", target="", num_steps=4, num_images=16)
    return c
