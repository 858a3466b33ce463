"""Turn a config into the pieces the pure functions take: model, data, prior, f', loss.

This is the one place that reads the config's names; the math modules never see a config.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np

from fdrl_jax import configlib, divergences, models, priors
from fdrl_jax.data import build_data


@dataclasses.dataclass(frozen=True)
class Experiment:
    config: object
    model: nn.Module
    data: object  # has .sample(key, n) and .shape
    prior: object  # has .sample(key, n)
    fprime: Callable
    loss_fn: Callable

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def apply_fn(self, params, x):
        return self.model.apply({"params": params}, x)


# Separate PRNG streams derived from the root key; each is folded with the step.
STREAM_TRAIN, STREAM_DATA, STREAM_FIT = 0, 1, 2


def fit_samples(data, n: int, seed: int) -> np.ndarray:
    """Samples to fit a data-dependent prior: all points of a finite set, else n fresh draws."""
    points = getattr(data, "points", None)
    if points is not None:
        return np.asarray(points)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), STREAM_FIT)
    return np.asarray(data.sample(key, n))


def build_experiment(config) -> Experiment:
    """Validate `config` and build everything a run needs from it."""
    configlib.validate(config)
    data = build_data(config.data)
    prior = priors.build_prior(
        config.prior, data.shape, lambda: fit_samples(data, config.prior.fit_samples, config.seed)
    )
    return Experiment(
        config=config,
        model=models.build_model(config.model),
        data=data,
        prior=prior,
        fprime=divergences.get_fprime(config.divergence),
        loss_fn=divergences.get_loss(config.loss),
    )
