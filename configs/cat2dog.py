"""Cat2dog 64² unpaired translation (paper Sec. 6.5, SPEC "Unpaired image-to-image translation").

Algorithm 1 with the prior replaced by source-domain images (`prior.name = "dataset"`: cats,
flipped and dequantised like data) and the data by the target domain (dogs): the shallow
`cat2dog` ResNet (spectral norm, self-attention at 128 channels), LSIF-χ², K = 100 in training
and 110 at test time, 40k steps with lr × 0.1 at 20k and 30k. Preprocessing: resize 84, center
crop 64. The folders follow the usual layout `<root>/trainA` (cats), `trainB` (dogs), `testA`,
`testB`; the default root is `data/cat2dog`, and each path can be overridden:

    python -m fdrl_jax.main --config=configs/cat2dog.py --workdir=runs/cat2dog \
      --config.data.path=ROOT/trainB --config.prior.source.path=ROOT/trainA
    python -m fdrl_jax.main --config=configs/cat2dog.py --workdir=runs/cat2dog --mode=translate \
      --config.translate.input=ROOT/testA --config.translate.target=ROOT/testB

Arguments (comma-separated): a pairing (`lr-kl`, ...), `smoke` (synthetic 64² images, seconds
on a CPU) and `cifar`: CIFAR-10 cat -> dog at 32² from the .npz files that
`fdrl_jax.translate.cifar_pair(".../cifar10-jpeg.npz", "data/cifar_cat2dog")` writes.
"""

from fdrl_jax.configlib import image_config, split_arg

ROOT = "data/cat2dog"
CIFAR_ROOT = "data/cifar_cat2dog"


def get_config(arg: str | None = None):
    shared, own = split_arg(arg, ("cifar",))
    cifar, smoke = "cifar" in own, "smoke" in shared.split(",")
    image = {"resize": 84, "size": 64, "channels": 3}
    if cifar:  # CIFAR-10 images are 32² already
        image = {"resize": 0, "size": 32, "channels": 3}
    c = image_config(
        shared,
        data={
            "name": "npz" if cifar else "folder",
            "path": f"{CIFAR_ROOT}/trainB.npz" if cifar else f"{ROOT}/trainB",
            **image,
        },
        model={"arch": "cat2dog"},
        **{
            "prior.name": "dataset",
            # as the reference: the dequantised source images are not clamped
            "prior.clip": False,
            "flow.num_steps": 100,
            "flow.kappa": 10,
            "train.num_steps": 40_000,
            "optim.decay_steps": (20_000, 30_000),
            "translate.num_steps": 110,
            "translate.input": f"{CIFAR_ROOT}/testA.npz" if cifar else f"{ROOT}/testA",
            "translate.target": f"{CIFAR_ROOT}/testB.npz" if cifar else f"{ROOT}/testB",
        },
    )
    c.prior.source.update(
        {
            "name": c.data.name,
            "path": f"{CIFAR_ROOT}/trainA.npz" if cifar else f"{ROOT}/trainA",
            **image,
        }
    )
    if smoke:  # image_config swapped the data for synthetic images; the source follows
        c.prior.source.update(
            {"name": "synthetic", "synthetic_count": 48, "size": c.data.size, "resize": 0}
        )
        c.translate.update({"input": "", "target": "", "num_steps": 4, "num_images": 16})
    return c
