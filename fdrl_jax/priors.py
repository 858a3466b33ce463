"""Priors q'(x) that the flow starts from (SPEC "Data-dependent prior", Eq. 8).

A prior is a small pytree with a `sample(key, n)` method, so it can be passed into jitted
functions as an argument (fitted statistics are data, not constants baked into the program).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = jax.Array
DDP_JITTER = 1e-4


@struct.dataclass
class GaussianPrior:
    """N(mean, diag(std²)) over an event of shape `shape`."""

    mean: Array
    std: Array
    shape: tuple[int, ...] = struct.field(pytree_node=False)

    def sample(self, key: Array, n: int) -> Array:
        return self.mean + self.std * jax.random.normal(key, (n, *self.shape))


@struct.dataclass
class UniformPrior:
    """U[low, high] per coordinate (the FDRL-UP ablation uses [-1, 1])."""

    low: Array
    high: Array
    shape: tuple[int, ...] = struct.field(pytree_node=False)

    def sample(self, key: Array, n: int) -> Array:
        return jax.random.uniform(key, (n, *self.shape), minval=self.low, maxval=self.high)


@struct.dataclass
class FullCovariancePrior:
    """The data-dependent prior: N(μ, Σ) sampled as μ + L ε with L = chol(Σ + jitter·I)."""

    mean: Array  # (D,)
    chol: Array  # (D, D), lower triangular
    shape: tuple[int, ...] = struct.field(pytree_node=False)

    def sample(self, key: Array, n: int) -> Array:
        eps = jax.random.normal(key, (n, self.mean.shape[0]), self.chol.dtype)
        return (self.mean + eps @ self.chol.T).reshape(n, *self.shape)


def gaussian_prior(
    shape: Sequence[int], mean: float | Sequence[float] = 0.0, std: float | Sequence[float] = 1.0
) -> GaussianPrior:
    shape = tuple(int(s) for s in shape)
    return GaussianPrior(
        mean=jnp.broadcast_to(jnp.asarray(mean, jnp.float32), shape),
        std=jnp.broadcast_to(jnp.asarray(std, jnp.float32), shape),
        shape=shape,
    )


def uniform_prior(shape: Sequence[int], low: float = -1.0, high: float = 1.0) -> UniformPrior:
    return UniformPrior(
        low=jnp.float32(low), high=jnp.float32(high), shape=tuple(int(s) for s in shape)
    )


def fit_full_covariance(x: np.ndarray, jitter: float = DDP_JITTER) -> FullCovariancePrior:
    """Fit the data-dependent prior to samples x of shape (N, *event) in float64.

    μ = mean(x), Σ = (x-μ)ᵀ(x-μ)/N (biased, as the authors' code), L = chol(Σ + jitter·I).
    """
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"The data-dependent prior needs data of shape (N>=2, ...); got {x.shape}")
    flat = x.reshape(x.shape[0], -1).astype(np.float64)
    mu = flat.mean(axis=0)
    centred = flat - mu
    cov = centred.T @ centred / flat.shape[0]
    chol = np.linalg.cholesky(cov + jitter * np.eye(cov.shape[0]))
    return FullCovariancePrior(
        mean=jnp.asarray(mu, jnp.float32),
        chol=jnp.asarray(chol, jnp.float32),
        shape=tuple(x.shape[1:]),
    )


def covariance_of(prior: FullCovariancePrior) -> np.ndarray:
    """Σ + jitter·I as the prior samples it (L Lᵀ)."""
    chol = np.asarray(prior.chol, np.float64)
    return chol @ chol.T


# Builders: (prior config, event shape, data sampler for fitting) -> prior. `fit_data` is a
# zero-argument callable so data is only materialised by priors that need it.
PriorBuilder = Callable[..., object]


def _build_gaussian(cfg, shape, fit_data):
    del fit_data
    return gaussian_prior(shape, mean=cfg.get("mean", 0.0), std=cfg.get("std", 1.0))


def _build_uniform(cfg, shape, fit_data):
    del fit_data
    return uniform_prior(shape, cfg.get("low", -1.0), cfg.get("high", 1.0))


def _build_ddp(cfg, shape, fit_data):
    del shape
    return fit_full_covariance(fit_data(), jitter=cfg.get("jitter", DDP_JITTER))


PRIORS: dict[str, PriorBuilder] = {
    "gaussian": _build_gaussian,
    "uniform": _build_uniform,
    "ddp": _build_ddp,
}


def build_prior(cfg, shape: Sequence[int], fit_data: Callable[[], np.ndarray]):
    """Prior named by `cfg.name` (one of PRIORS) for events of `shape`."""
    if cfg.name not in PRIORS:
        raise ValueError(
            f"Unknown prior {cfg.name!r}; choose one of {sorted(PRIORS)} "
            "(config field `prior.name`)."
        )
    return PRIORS[cfg.name](cfg, tuple(shape), fit_data)
