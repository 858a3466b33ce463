"""Config sections of the modes other than training and sampling FDRL: `--mode=gan`, `refine`,
`classifier`, `conditional` and `translate`. They are read only after training (changing them
does not change the trained model)."""

from __future__ import annotations

from fdrl_jax import dgflow, gan, robust_resnet
from fdrl_jax.configlib.fields import (
    Field,
    boolean,
    integer,
    number,
    one_of,
    optional,
    string,
)
from fdrl_jax.models import PARAM_INITS

_SEED = (0, 2**31 - 1)
_POSITIVE = (lambda v: v > 0, "> 0")

SCHEMA = {
    # --mode=gan: a small GAN on the same data (a base model for DGflow refinement).
    "gan": {
        "num_steps": integer(2_000, 0, 10**8),
        "batch_size": integer(256, 1, 10**6),
        "lr": number(2e-4, *_POSITIVE),
        "latent_dim": integer(2, 1, 10**5),
        "num_samples": integer(5_000, 1, 10**8),
        "hidden": integer(128, 1, 65_536),  # MLP generator width
        "spectral_norm": boolean(False),  # spectrally normalise the discriminator (`model`)
        # The discriminator's initialisation, its own (not `model.param_init`: that one matches
        # the FDRL estimator to the reference). Flax's trains the base GAN much closer to the
        # data at these settings (benchmarks/RESULTS.md, "DGflow").
        "param_init": one_of(gan.DISCRIMINATOR_INIT, PARAM_INITS),
    },
    # --mode=refine: DGflow refinement of the samples in `refine.input` (.npz).
    "refine": {
        "input": string("", "a path to an .npz"),  # e.g. <workdir>/gan/samples.npz
        "key": string("samples", "an array name"),
        # discriminator (`refine.discriminator`) | estimator (this run's FDRL estimator)
        "source": one_of("discriminator", ("discriminator", "estimator")),
        # data: refine the samples x; latent: refine the `latent_key` latents z of the
        # generator in `generator` (DGflow Algorithm 1) and decode them
        "space": one_of("data", ("data", "latent")),
        "generator": string("", "a path to a params .npz"),  # --mode=gan's generator
        "latent_key": string("latents", "an array name"),
        "discriminator": string("", "a path to a params .npz"),  # a `model`-shaped logit net
        "divergence": one_of("kl", dgflow.REFINE_DIVERGENCES),  # discriminator source
        "num_steps": integer(dgflow.DEFAULT_NUM_STEPS, 0, 10**6),
        "eta": number(dgflow.DEFAULT_ETA, *_POSITIVE),
        "gamma": number(dgflow.DEFAULT_GAMMA, lambda v: v >= 0, ">= 0"),
        "seed": integer(3, *_SEED),
    },
    # --mode=classifier: p(y|x) on the data's labels for class-conditional sampling (paper
    # Sec. 6.4), with L2 PGD adversarial training when adv_eps > 0 (fdrl_jax/classifier.py).
    # name = robust_resnet50: the paper's own, the robustness library's CIFAR ResNet-50
    # imported (not trained) with `python -m fdrl_jax.convert --from=robustness
    # cifar_l2_1_0.pt OUT.npz`; set `path` to OUT.npz (fdrl_jax/robust_resnet.py).
    "classifier": {
        "path": string("", "a path to a params .npz"),  # "" = <workdir>/classifier/params.npz
        "name": one_of("cnn", ("cnn", "mlp", robust_resnet.NAME)),
        # cnn: 3×3 conv channels (stride 2 after the first)
        "features": Field(
            (32, 64),
            lambda v: (
                isinstance(v, tuple | list) and all(type(f) is int and 1 <= f <= 65_536 for f in v)
            ),
            "a tuple of channel counts >= 1, e.g. (32, 64)",
        ),
        "hidden": integer(128, 1, 65_536),  # the dense layer before the logits
        "num_steps": integer(3_000, 0, 10**8),
        "batch_size": integer(128, 1, 10**6),
        "lr": number(1e-3, *_POSITIVE),
        "holdout": number(0.1, lambda v: 0 <= v <= 0.5, "in [0, 0.5]"),  # held-out fraction
        "adv_eps": number(0.0, lambda v: v >= 0, ">= 0"),  # L2 radius of PGD (0: clean)
        "adv_steps": integer(7, 1, 1_000),
        "adv_step_size": number(0.0, lambda v: v >= 0, ">= 0 (0: 2.5 · adv_eps / adv_steps)"),
        "seed": integer(0, *_SEED),
    },
    # --mode=conditional: the estimator composed with the classifier (Eq. 12 / 29, φ of Eq. 31).
    "conditional": {
        "label": integer(-1, -1, 10**6),  # the class to sample; -1: every class
        "phi": number(0.1, lambda v: v >= 0, ">= 0"),  # log r(x|y) = log r − φ log(N p(y|x))
        # None: K + 10, the reference's n_flow_steps + 10 (110 for the image configs)
        "num_steps": optional(
            None, lambda v: type(v) is int and 0 <= v <= 10**6, "an integer in [0, 1e6]", int
        ),
        "num_samples": integer(100, 1, 10**7),  # per class
        "grid_size": integer(10, 1, 1_000),  # per class in the all-classes grid
        "seed": integer(4, *_SEED),
    },
    # --mode=translate: flow source-domain images (prior.name = "dataset" runs) to the target.
    "translate": {
        "input": string("", "a folder or .npz path"),  # source images, read like prior.source
        "key": optional(None, lambda v: isinstance(v, str), "an array name", str),
        "num_steps": integer(110, 0, 10**6),  # paper: K = 100 in training, 110 at test time
        "num_images": integer(0, 0, 10**8),  # 0: all
        "target": string("", "a folder or .npz path"),  # target test images: FID ("": none)
        "fid_weights": string("", "a weights path"),  # Inception weights; "" = default
        "grid_size": integer(32, 1, 10_000),  # pairs in the before/after grid
        "batch_size": integer(500, 1, 10**6),
        "seed": integer(5, *_SEED),
    },
}
