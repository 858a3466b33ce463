"""fdrl-jax: Flow-Guided Density Ratio Learning in JAX/Flax.

The pure functions of the algorithm, importable from a notebook (they take params and PRNG
keys explicitly and read no config):

    import fdrl_jax as fd
    fd.flow_step(potential, x, key, eta, nu)      # one Euler–Maruyama step (paper Eq. 9)
    fd.flow(potential, x0, key, K, eta, nu)       # K steps (lax.scan, or a run-time length)
    fd.make_potential(apply_fn, params, fprime)   # x ↦ f'(r_θ(x)), what the flow descends
    fd.bregman_loss("lsif", out_q, out_p)         # the estimator's objective
    fd.ddp_sample(prior, key, n)                  # draws of the data-dependent prior
    fd.train_step(state, prior, x_p, key, ...)    # Algorithm 1
    fd.sample(potential, prior, key, n, ...)      # Algorithm 2 (fd.sample_from: given x0)

and what builds them from a config (`fd.load_config`, `fd.build_experiment`, and for an
experiment `fd.make_train_step`, `fd.initial_state`, `fd.Sampler`). What each `--mode` runs
is in `fdrl_jax.modes`; submodules hold the rest.
"""

from fdrl_jax.algorithms import (
    TrainState,
    clip_images,
    draw_prior,
    init_state,
    make_optimizer,
    sample,
    sample_from,
    train_step,
)
from fdrl_jax.configlib import PAIRINGS, default_config, load_config
from fdrl_jax.divergences import (
    FPRIMES,
    LOSSES,
    bregman_loss,
    check_pairing,
    chi2_fprime,
    js_fprime,
    kl_fprime,
    kliep_loss,
    logd_fprime,
    lr_loss,
    lsif_loss,
)
from fdrl_jax.evaluation.toy_metrics import c2st, energy_distance, sliced_wasserstein2
from fdrl_jax.experiment import Experiment, build_experiment
from fdrl_jax.flows import flow, flow_step, make_potential
from fdrl_jax.priors import (
    FullCovariancePrior,
    GaussianPrior,
    LowRankPrior,
    UniformPrior,
    ddp_sample,
    fit_full_covariance,
    fit_gaussian,
    gaussian_prior,
    uniform_prior,
)
from fdrl_jax.sampler import Sampler
from fdrl_jax.trainer import initial_state, make_train_step

__all__ = [
    "FPRIMES",
    "LOSSES",
    "PAIRINGS",
    "Experiment",
    "FullCovariancePrior",
    "GaussianPrior",
    "LowRankPrior",
    "Sampler",
    "TrainState",
    "UniformPrior",
    "bregman_loss",
    "build_experiment",
    "c2st",
    "check_pairing",
    "chi2_fprime",
    "clip_images",
    "ddp_sample",
    "default_config",
    "draw_prior",
    "energy_distance",
    "fit_full_covariance",
    "fit_gaussian",
    "flow",
    "flow_step",
    "gaussian_prior",
    "init_state",
    "initial_state",
    "js_fprime",
    "kl_fprime",
    "kliep_loss",
    "load_config",
    "logd_fprime",
    "lr_loss",
    "lsif_loss",
    "make_optimizer",
    "make_potential",
    "make_train_step",
    "sample",
    "sample_from",
    "sliced_wasserstein2",
    "train_step",
    "uniform_prior",
]
