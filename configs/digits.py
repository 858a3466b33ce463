"""scikit-learn's 8×8 handwritten digits (1,797 images shipped with scikit-learn): the embedded
default of the README's main job. Trains on a 2-core CPU in minutes.

The paper's image recipe (`configlib.image_config`: LSIF-χ², clamped data-dependent prior,
Adam 1e-4, batch 64, EMA 0.998) with these changes for this data, measured in
benchmarks/RESULTS.md:
- the estimator is the MLP (256 wide) on the 64 flattened pixels: the smallest ResNet is ~25×
  slower per step on a CPU; `--config.model.name=resnet` selects a digits-sized ResNet;
- no random flips (a mirrored 3 is not a digit), and K = 50, κ = 10, η = 1: at 8×8 the flow
  needs far fewer, smaller steps than at 32²;
- `--mode=gan` (a base model for DGflow refinement): 16-D latent, 256-wide generator, 3,000
  steps, 1,000 samples.
Arguments (comma-separated): a pairing (`lsif-chi2`, the default; `lr-kl`, `lr-js`,
`lr-logd`), `smoke`; `paper` is an error (not an experiment of the paper).
"""

from fdrl_jax import configlib
from fdrl_jax.configlib import PAIRINGS, choice


def get_config(arg=None):
    arg = configlib.parse_arg(arg, pairing=choice("lsif-chi2", PAIRINGS), paper=False, smoke=False)
    configlib.no_paper_settings(arg, "the 8×8 digits are")
    c = configlib.image_config()
    c.data.update(name="digits", flip=False)
    c.model.update(name="mlp", hidden=256, spectral_norm=False)
    # for --config.model.name=resnet: 8×8 -> 4×4
    c.model.update(arch="", stem=32, stages=((32, 1, 1), (64, 1, 2)))
    c.flow.num_steps, c.flow.kappa, c.flow.eta = 50, 10, 1.0
    c.train.num_steps, c.optim.decay_steps = 10_000, (8_000, 9_000)
    c.train.checkpoint_every, c.train.sample_every = 1_000, 1_000
    c.sample.num_samples, c.eval.num_samples = 1_000, 1_000
    # The digits classifier is the quality score here; FID of 8×8 digits through Inception
    # (upsampled to 299²) says little and is slow on a CPU.
    c.eval.feature_net, c.eval.fid_lengths = "random", (50, 60, 70, 80)
    # The robust guide measured on the digits; conditional flows run K + 10 = 60 steps.
    c.classifier.adv_eps = 1.5
    # --mode=gan's base model for DGflow, as measured (benchmarks/RESULTS.md, "DGflow"): a
    # 16-D latent and 256-wide generator, 3,000 steps; 1,000 samples to refine.
    c.gan.update(latent_dim=16, hidden=256, num_steps=3_000, num_samples=1_000)
    c.loss, c.divergence = PAIRINGS[arg.pairing]
    if arg.smoke:
        configlib.smoke(c)
    return c
