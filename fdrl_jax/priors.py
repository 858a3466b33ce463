"""Priors q'(x) that the flow starts from (paper Sec. 3.2, Eq. 8; docs/algorithm.md §8).

A prior is a small pytree with a `sample(key, n)` method, so it can be passed into jitted
functions as an argument (fitted statistics are data, not constants baked into the program).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import struct

from fdrl_jax.data import IMAGE_SOURCES, load_images
from fdrl_jax.errors import ConfigError, DataError

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
    # (D, D) with L Lᵀ = Σ + jitter·I: lower triangular when fitted here; a prior imported
    # from the reference keeps its factor with the rows reordered to our pixel order
    chol: Array
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


@struct.dataclass
class LowRankPrior:
    """N(μ, V Vᵀ + diag(ψ)): the top-k principal directions V = U √Λ plus the residual
    variance ψ per pixel, for dimensions where a D×D Σ does not fit (LSUN 128²: 9.7 GB)."""

    mean: Array  # (D,)
    factors: Array  # (D, k) = U √Λ
    diag_std: Array  # (D,) = √ψ
    shape: tuple[int, ...] = struct.field(pytree_node=False)

    def sample(self, key: Array, n: int) -> Array:
        k_low, k_diag = jax.random.split(key)
        d, k = self.factors.shape
        low = jax.random.normal(k_low, (n, k), self.factors.dtype) @ self.factors.T
        diag = self.diag_std * jax.random.normal(k_diag, (n, d), self.diag_std.dtype)
        return (self.mean + low + diag).reshape(n, *self.shape)


def _flat64(x) -> Array:
    return jnp.asarray(x).reshape(x.shape[0], -1).astype(jnp.float64)


def fit_gaussian(
    batches: Iterable[np.ndarray],
    *,
    form: str = "full",
    rank: int = 256,
    oversample: int = 0,
    jitter: float = DDP_JITTER,
    seed: int = 0,
    total: int | None = None,
) -> FullCovariancePrior | LowRankPrior:
    """Fit the data-dependent prior in one streaming pass over `batches` of shape (b, *event).

    Sums and second moments accumulate in float64 on the default device (the accelerator where
    there is one). μ = mean(x), Σ = (x−μ)ᵀ(x−μ)/N (biased, as the authors' code).
    - form "full": L = chol(Σ + jitter·I); holds two D×D float64 arrays at most (the sums
      and Σ + jitter·I are formed in place: 39 GB at LSUN Church's D = 49,152).
    - form "lowrank": Σ ≈ U Λ Uᵀ + diag(ψ) with the top `rank` eigenpairs from a single-pass
      Nyström sketch Y = Σ Ω (Tropp et al. 2017, Alg. 3; Ω has rank + oversample Gaussian
      columns) and ψ = diag(Σ) − diag(U Λ Uᵀ) + jitter; memory O(D·rank).
    `total` (number of samples, if known) only improves the progress log.
    """
    if form not in ("full", "lowrank"):
        raise ConfigError(f"Unknown prior form {form!r}; choose 'full' or 'lowrank' (prior.form).")
    with jax.enable_x64(True):
        n, shape, acc, omega, t0, next_log = 0, None, None, None, time.time(), 0.1

        @functools.partial(jax.jit, donate_argnums=0)  # Σ xᵀx accumulates in place
        def update_full(acc, x):
            x = _flat64(x)
            return acc[0] + x.sum(0), acc[1] + x.T @ x

        @jax.jit
        def update_lowrank(acc, x, omega):
            x = _flat64(x)
            return acc[0] + x.sum(0), acc[1] + x.T @ (x @ omega), acc[2] + (x * x).sum(0)

        for batch in batches:
            batch = np.asarray(batch)
            if shape is None:
                shape, d = tuple(batch.shape[1:]), int(np.prod(batch.shape[1:]))
                if form == "full":
                    acc = (jnp.zeros(d, jnp.float64), jnp.zeros((d, d), jnp.float64))
                else:
                    cols = min(d, rank + (oversample or max(10, rank // 2)))
                    rng = np.random.default_rng(seed)
                    omega = jnp.asarray(rng.standard_normal((d, cols)))
                    acc = (
                        jnp.zeros(d, jnp.float64),
                        jnp.zeros((d, cols), jnp.float64),
                        jnp.zeros(d, jnp.float64),
                    )
            elif tuple(batch.shape[1:]) != shape:
                raise ValueError(f"Batch of shape {batch.shape} does not match {shape}")
            acc = update_full(acc, batch) if form == "full" else update_lowrank(acc, batch, omega)
            n += batch.shape[0]
            if total and n >= next_log * total:
                logging.info(
                    "Fitting the %s prior: %d/%d samples (%.0f/s)",
                    form,
                    n,
                    total,
                    n / max(time.time() - t0, 1e-9),
                )
                next_log += 0.1
        if n < 2:
            raise DataError(f"The data-dependent prior needs at least 2 samples; got {n}.")
        mu = acc[0] / n
        if form == "full":
            chol = jnp.linalg.cholesky(_jittered_covariance(acc[1], mu, n, jitter))
            if not bool(jnp.all(jnp.isfinite(chol))):
                raise FloatingPointError(
                    "Cholesky of the data covariance failed; raise prior.jitter (now "
                    f"{jitter}) or use prior.form='lowrank'."
                )
            out = FullCovariancePrior(mean=mu, chol=chol, shape=shape)
        else:
            sketch = acc[1] / n - jnp.outer(mu, mu @ omega)  # Σ Ω
            shift = jnp.sqrt(sketch.shape[0]) * jnp.finfo(jnp.float64).eps * jnp.linalg.norm(sketch)
            y = sketch + shift * omega
            b = omega.T @ y
            c = jnp.linalg.cholesky((b + b.T) / 2)
            e = jax.scipy.linalg.solve_triangular(c, y.T, lower=True).T  # Y C⁻ᵀ
            u, sv, _ = jnp.linalg.svd(e, full_matrices=False)
            k = min(rank, u.shape[1])
            lam = jnp.maximum(sv[:k] ** 2 - shift, 0.0)
            factors = u[:, :k] * jnp.sqrt(lam)
            var = acc[2] / n - mu * mu
            psi = jnp.maximum(var - jnp.sum(factors * factors, axis=1), 0.0) + jitter
            out = LowRankPrior(mean=mu, factors=factors, diag_std=jnp.sqrt(psi), shape=shape)
        logging.info("Fitted the %s prior on %d samples in %.1f s", form, n, time.time() - t0)
        return jax.tree.map(lambda a: np.asarray(a, np.float32), out)


@functools.partial(jax.jit, donate_argnums=0)
def _jittered_covariance(second: Array, mu: Array, n: int, jitter: float) -> Array:
    """Σ + jitter·I = Σxᵀx / n − μμᵀ + jitter·I, written over `second` (donated)."""
    return second / n - jnp.outer(mu, mu) + jitter * jnp.eye(mu.shape[0], dtype=second.dtype)


def ddp_sample(prior: FullCovariancePrior | LowRankPrior, key: Array, n: int) -> Array:
    """n draws (n, *event) of the data-dependent prior of Eq. 8: μ + L ε with L = chol(Σ +
    jitter·I) (full form), or μ + V ε₁ + √ψ ⊙ ε₂ (low-rank + diagonal form). Pure and jit-able
    with n static. Clamping to [-1, 1] (images) is the caller's (`algorithms.draw_prior`)."""
    if not isinstance(prior, FullCovariancePrior | LowRankPrior):
        raise TypeError(
            f"ddp_sample takes a fitted data-dependent prior; got {type(prior).__name__}"
        )
    return prior.sample(key, n)


def fit_full_covariance(x: np.ndarray, jitter: float = DDP_JITTER) -> FullCovariancePrior:
    """Fit the data-dependent prior (full form) to samples x of shape (N, *event) in float64."""
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < 2:
        raise DataError(f"The data-dependent prior needs data of shape (N>=2, ...); got {x.shape}")
    return to_device(fit_gaussian([x], form="full", jitter=jitter))


def to_device(prior):
    """The prior with its arrays as jax arrays (float32)."""
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), prior)


def covariance_of(prior) -> np.ndarray:
    """The covariance the prior samples from (L Lᵀ, or V Vᵀ + diag(ψ))."""
    if isinstance(prior, LowRankPrior):
        v = np.asarray(prior.factors, np.float64)
        return v @ v.T + np.diag(np.asarray(prior.diag_std, np.float64) ** 2)
    chol = np.asarray(prior.chol, np.float64)
    return chol @ chol.T


# Builders: (prior config, event shape, data for fitting) -> prior. `fit_data` is a
# zero-argument callable returning (iterable of batches, total count), so data is only read by
# priors that need it.
PriorBuilder = Callable[..., object]


def _build_gaussian(cfg, shape, fit_data):
    del fit_data
    return gaussian_prior(shape, mean=cfg.get("mean", 0.0), std=cfg.get("std", 1.0))


def _build_uniform(cfg, shape, fit_data):
    del fit_data
    return uniform_prior(shape, cfg.get("low", -1.0), cfg.get("high", 1.0))


def _build_ddp(cfg, shape, fit_data):
    del shape
    batches, total = fit_data()
    prior = fit_gaussian(
        batches,
        form=cfg.get("form", "full"),
        rank=cfg.get("rank", 256),
        jitter=cfg.get("jitter", DDP_JITTER),
        total=total,
    )
    return to_device(prior)


def _build_dataset(cfg, shape, fit_data):
    """Source-domain images (unpaired translation, paper Sec. 6.5): an `ImageData` read from
    the data section `cfg.source`. It is already a pytree whose `.sample(key, n)` draws
    flipped, dequantised images in [-1, 1], so it passes into the jitted step like any prior."""
    del fit_data
    source = cfg.get("source", None)
    if source is None or source.get("name", None) not in IMAGE_SOURCES:
        raise ConfigError(
            "prior.name = 'dataset' needs the image source in `prior.source` (prior.source.name "
            f"one of {list(IMAGE_SOURCES)}, plus prior.source.path etc. as for `data`)."
        )
    try:
        images = load_images(source)
    except (OSError, ValueError) as e:  # its messages name `data.*`: say which section it was
        raise type(e)(f"Loading the dataset prior (config section `prior.source`): {e}") from e
    if tuple(images.shape) != tuple(shape):
        raise ConfigError(
            f"The dataset prior's images have shape {tuple(images.shape)} but the data's are "
            f"{tuple(shape)}; set prior.source.size / resize / channels to match `data`."
        )
    return images


PRIORS: dict[str, PriorBuilder] = {
    "gaussian": _build_gaussian,
    "uniform": _build_uniform,
    "ddp": _build_ddp,
    "dataset": _build_dataset,
}


def build_prior(cfg, shape: Sequence[int], fit_data: Callable[[], np.ndarray]):
    """Prior named by `cfg.name` (one of PRIORS) for events of `shape`."""
    if cfg.name not in PRIORS:
        raise ConfigError(
            f"Unknown prior {cfg.name!r}; choose one of {sorted(PRIORS)} "
            "(config field `prior.name`)."
        )
    return PRIORS[cfg.name](cfg, tuple(shape), fit_data)
