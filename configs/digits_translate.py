"""Unpaired translation on CPU: scikit-learn digits (A) -> bold digits (B), 8×8.

`fdrl_jax.translate.digits_pair("data/digits_pair")` writes the pair: A is half of the 1,797
digits as they are, B the other half with strokes one pixel wider (a 1×2 grey dilation; the
two domains hold different images), 100 of each held out as testA / testB. Training is
Algorithm 1 with the dataset prior (A) and the digits recipe of `configs/digits.py` (MLP
estimator, LSIF-χ², K = 50, η = 1, no flips); translation runs K + 10% = 55 steps.

    python -c "from fdrl_jax import translate; translate.digits_pair('data/digits_pair')"
    python -m fdrl_jax.main --config=configs/digits_translate.py --workdir=runs/digits_translate
    python -m fdrl_jax.main --config=configs/digits_translate.py --workdir=runs/digits_translate \
      --mode=translate

Arguments: a pairing and/or `smoke` (the built-in digits on both sides, seconds).
"""

from fdrl_jax.configlib import image_config, split_arg

ROOT = "data/digits_pair"


def get_config(arg: str | None = None):
    image = {"size": 8, "channels": 1, "flip": False}
    c = image_config(
        arg,
        data={"name": "npz", "path": f"{ROOT}/trainB.npz", **image},
        model={"name": "mlp", "hidden": 256, "arch": ""},
        **{
            "prior.name": "dataset",
            # as the reference: the dequantised source images are not clamped
            "prior.clip": False,
            "flow.num_steps": 50,
            "flow.kappa": 5,
            "flow.eta": 1.0,
            "train.num_steps": 6_000,
            "optim.decay_steps": (4_000, 5_000),
            "train.checkpoint_every": 1_000,
            "train.sample_every": 1_000,
            "sample.num_samples": 1_000,
            "eval.num_samples": 1_000,
            "translate.num_steps": 55,
            "translate.input": f"{ROOT}/testA.npz",
        },
    )
    c.prior.source.update({"name": "npz", "path": f"{ROOT}/trainA.npz", **image})
    # image_config's smoke swapped the data for synthetic images: use the built-in digits
    if "smoke" in split_arg(arg, ("smoke",))[1]:
        c.data.name = "digits"
        c.prior.source.name = "digits"
        c.translate.update({"input": "", "num_steps": 4, "num_images": 16})
    return c
