"""A config turned into the pieces the pure functions take: model, data, prior, f', loss.

The assembly layer starts here: `build_experiment` validates the config and builds each piece
from its section through the library's registries (`data.build_data`, `models.build_model`,
`priors.build_prior`, `divergences.get_fprime` / `get_loss`); `trainer.py` and `sampler.py`
compile Algorithms 1 and 2 with its settings. The library below never sees a config. A
fitted prior can be cached by the caller (`prior_cache`, e.g. the run directory's `prior.npz`:
see `run/files.py`), so this module reads no run directory itself.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from fdrl_jax import configlib, divergences, models, priors
from fdrl_jax.data import build_data

# Separate PRNG streams derived from the root key (`config.seed`); each is folded with the
# step, so a resumed run draws what an uninterrupted one draws and no key is checkpointed.
STREAM_TRAIN, STREAM_DATA, STREAM_FIT, STREAM_INIT = 0, 1, 2, 3


def stream_key(config, stream: int, step=None) -> jax.Array:
    """The key of one PRNG stream of the run (`STREAM_*`), folded with `step` when given."""
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), stream)
    return key if step is None else jax.random.fold_in(key, step)


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What a run trains and samples with, built from its config (`build_experiment`)."""

    config: object
    model: nn.Module
    data: object  # has .sample(key, n) and .shape
    prior: object  # has .sample(key, n)
    fprime: Callable
    loss_fn: Callable
    # Compute dtype of the estimator (train.precision); its outputs are float32 either way.
    compute_dtype: object = jnp.float32

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def apply_fn(self, variables, x):
        """The net output (B,) for `variables` = {"params": ..., plus any state collections}.

        In bfloat16 the variables and inputs are cast for the pass only: the float32 params,
        optimiser state and particles are what get updated, and gradients come back float32.
        """
        if self.compute_dtype == jnp.float32:
            return self.model.apply(variables, x)
        variables = jax.tree.map(lambda a: _cast(a, self.compute_dtype), variables)
        out = self.model.apply(variables, x.astype(self.compute_dtype))
        return out.astype(jnp.float32)

    def update_stats(self, params, stats: dict, x) -> dict:
        """One power iteration of every spectral norm (`stats` = the non-param collections)."""
        _, new = self.model.apply(
            {"params": params, **stats}, x, update_stats=True, mutable=list(stats)
        )
        return dict(new)


def _cast(a, dtype):
    return a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a


def fit_data(data, n: int, seed: int, batch_size: int = 1000):
    """(batches, total) to fit a data-dependent prior: every item of a finite set (images
    without flips or noise), else n fresh draws of an infinite source."""
    if hasattr(data, "clean_batches"):
        return data.clean_batches(batch_size), len(data)
    points = getattr(data, "points", None)
    if points is not None:
        return [np.asarray(points)], int(points.shape[0])
    key = jax.random.fold_in(jax.random.PRNGKey(seed), STREAM_FIT)
    return [np.asarray(data.sample(key, n))], n


# Data fields that say how the images reach the devices and where TFDS keeps them, not what
# the data is: they change neither a fitted prior nor the trained model.
INPUT_PATH_FIELDS = ("pipeline", "device_memory_fraction", "prefetch", "tfds_data_dir")


def prior_fingerprint(config) -> str:
    """What a fitted prior depends on: the data and prior sections (and the seed)."""
    data = {k: v for k, v in config.data.to_dict().items() if k not in INPUT_PATH_FIELDS}
    return json.dumps(
        {"data": data, "prior": config.prior.to_dict(), "seed": config.seed},
        sort_keys=True,
        default=str,
    )


class PriorCache(Protocol):
    """Where a fitted prior is kept between runs: `load` returns the prior fitted with these
    settings (`fingerprint`) or None; `save` stores one."""

    def load(self, fingerprint: str): ...

    def save(self, prior, fingerprint: str) -> None: ...


def _prior(config, data, cache: PriorCache | None):
    """The config's prior. A fitted (data-dependent) prior is taken from `cache` when it holds
    one fitted with the same data and prior settings, else fitted and stored there."""

    def fit():
        return fit_data(data, config.prior.fit_samples, config.seed)

    if config.prior.name != "ddp" or cache is None:
        return priors.build_prior(config.prior, data.shape, fit)
    fingerprint = prior_fingerprint(config)
    prior = cache.load(fingerprint)
    if prior is None:
        prior = priors.build_prior(config.prior, data.shape, fit)
        cache.save(prior, fingerprint)
    return prior


def build_estimator(config) -> nn.Module:
    """The config's estimator network; with `model.unit_ratio_start` an estimator of r (not
    log r) starts at r ≈ 1, where LR's log r ≈ 0 starts."""
    model = models.build_model(config.model)
    if config.model.unit_ratio_start and divergences.LOSS_OUTPUT[config.loss] == "ratio":
        model = model.clone(output_bias=1.0)
    return model


def build_experiment(config, prior_cache: PriorCache | None = None) -> Experiment:
    """Validate `config` and build everything a run needs from it (a fitted prior is taken
    from, or stored in, `prior_cache` when given)."""
    configlib.validate(config)
    data = build_data(config.data, allow_stream=True)  # streamed when data.pipeline says so
    configlib.validate_for_data(config, data.shape)
    return Experiment(
        config=config,
        model=build_estimator(config),
        data=data,
        prior=_prior(config, data, prior_cache),
        fprime=divergences.get_fprime(config.divergence),
        loss_fn=divergences.get_loss(config.loss),
        compute_dtype=jnp.dtype(config.train.precision),
    )
