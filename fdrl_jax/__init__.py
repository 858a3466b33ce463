"""fdrl-jax: Flow-Guided Density Ratio Learning in JAX/Flax.

The pure functions are importable for notebooks (submodules `flow`, `train`, `sampling`,
`divergences`, `priors` hold the rest; their names are not shadowed here):

    import fdrl_jax as fd
    exp = fd.build_experiment(fd.load_config("configs/digits.py"))
"""

from fdrl_jax.configlib import PAIRINGS, default_config, load_config
from fdrl_jax.divergences import (
    FPRIMES,
    LOSSES,
    check_pairing,
    chi2_fprime,
    js_fprime,
    kl_fprime,
    kliep_loss,
    logd_fprime,
    lr_loss,
    lsif_loss,
)
from fdrl_jax.evaluation.toy_metrics import energy_distance, sliced_wasserstein2
from fdrl_jax.experiment import Experiment, build_experiment
from fdrl_jax.flow import flow_step, make_potential
from fdrl_jax.priors import (
    FullCovariancePrior,
    GaussianPrior,
    LowRankPrior,
    UniformPrior,
    fit_full_covariance,
    fit_gaussian,
    gaussian_prior,
    uniform_prior,
)
from fdrl_jax.sampling import make_sample_fn, sample
from fdrl_jax.train import TrainState, init_state, make_optimizer, make_step_fn, train_step

__all__ = [
    "FPRIMES",
    "LOSSES",
    "PAIRINGS",
    "Experiment",
    "FullCovariancePrior",
    "GaussianPrior",
    "LowRankPrior",
    "TrainState",
    "UniformPrior",
    "build_experiment",
    "check_pairing",
    "chi2_fprime",
    "default_config",
    "energy_distance",
    "fit_full_covariance",
    "fit_gaussian",
    "flow_step",
    "gaussian_prior",
    "init_state",
    "js_fprime",
    "kl_fprime",
    "kliep_loss",
    "load_config",
    "logd_fprime",
    "lr_loss",
    "lsif_loss",
    "make_optimizer",
    "make_potential",
    "make_sample_fn",
    "make_step_fn",
    "sample",
    "sliced_wasserstein2",
    "train_step",
    "uniform_prior",
]
