"""scikit-learn's 8×8 handwritten digits (1,797 images shipped with scikit-learn): the embedded
default of the README's main job. Trains on a 2-core CPU in minutes.

The SPEC's image recipe (LSIF-χ², clamped data-dependent prior, Adam 1e-4, batch 64, EMA
0.998) with two changes for this data, both measured (benchmarks/RESULTS.md):
- the estimator is the MLP (256 wide) on the 64 flattened pixels: the smallest ResNet is ~25×
  slower per step on a CPU; `--config.model.name=resnet` selects a digits-sized ResNet;
- no random flips (a mirrored 3 is not a digit), and K = 50, κ = 10, η = 1: at 8×8 the flow
  needs far fewer, smaller steps than at 32².
Arguments: a pairing (`lr-kl`, ...) and/or `smoke`.
"""

from fdrl_jax.configlib import image_config


def get_config(arg: str | None = None):
    return image_config(
        arg,
        data={"name": "digits", "flip": False},
        model={
            "name": "mlp",
            "hidden": 256,
            # for --config.model.name=resnet: 8×8 -> 4×4
            "arch": "",
            "stem": 32,
            "stages": ((32, 1, 1), (64, 1, 2)),
            "spectral_norm": False,
        },
        **{
            "flow.num_steps": 50,
            "flow.kappa": 10,
            "flow.eta": 1.0,
            "train.num_steps": 10_000,
            "optim.decay_steps": (8_000, 9_000),
            "train.checkpoint_every": 1_000,
            "train.sample_every": 1_000,
            "sample.num_samples": 1_000,
            "eval.num_samples": 1_000,
            # The digits classifier is the quality score here; FID of 8×8 digits through
            # Inception (upsampled to 299²) says little and is slow on a CPU.
            "eval.feature_net": "random",
            "eval.fid_lengths": (50, 60, 70, 80),
            # The robust guide measured on the digits (benchmarks/RESULTS.md); conditional
            # flows run K + 10 = 60 steps.
            "classifier.adv_eps": 1.5,
        },
    )
