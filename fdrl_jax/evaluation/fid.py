"""Fréchet Inception Distance: streaming feature statistics and the Fréchet distance.

FID = |μ₁ − μ₂|² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) between Gaussians fitted to network features.
Conventions follow pytorch-fid so numbers are comparable: Σ is the unbiased covariance
(np.cov(rowvar=False)), statistics files are `.npz` with keys `mu` and `sigma`. Any feature
network can stand in for Inception (a `FeatureFn`: images → (B, D) features), e.g. a small
Flax net in tests; `inception.make_inception_feature_fn` gives the real one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np
import scipy.linalg
from etils import epath

FeatureFn = Callable[[Any], Any]  # (B, ...) images → (B, D) features, numpy or jax
ImageSource = np.ndarray | jax.Array | Iterable[Any]


class Statistics(NamedTuple):
    mu: np.ndarray  # (D,) float64
    sigma: np.ndarray  # (D, D) float64, unbiased


class RunningStatistics:
    """Mean and covariance of features seen in batches, in float64, without keeping them.

    Batches merge with Chan et al.'s pairwise update (centred sums), so 50k+ samples of 2048-d
    features lose no precision to the cancellation that Σxxᵀ − nμμᵀ would suffer.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # Σ (x − mean)(x − mean)ᵀ

    def update(self, features: Any) -> RunningStatistics:
        f = np.asarray(features, dtype=np.float64)
        f = f.reshape(f.shape[0], -1)
        n = f.shape[0]
        if n == 0:
            return self
        mean_b = f.mean(axis=0)
        centred = f - mean_b
        m2_b = centred.T @ centred
        if self._mean is None:
            self.count, self._mean, self._m2 = n, mean_b, m2_b
            return self
        if f.shape[1] != self._mean.shape[0]:
            raise ValueError(f"feature dim {f.shape[1]} != {self._mean.shape[0]} seen before")
        total = self.count + n
        delta = mean_b - self._mean
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (self.count * n / total)
        self._mean = self._mean + delta * (n / total)
        self.count = total
        return self

    def finalize(self) -> Statistics:
        if self.count < 2:
            raise ValueError(f"need at least 2 samples for a covariance, got {self.count}")
        return Statistics(self._mean.copy(), self._m2 / (self.count - 1))


def statistics_from_features(features: Any) -> Statistics:
    """μ and the unbiased Σ of (N, D) features, as pytorch-fid computes them."""
    f = np.asarray(features, dtype=np.float64)
    return Statistics(f.mean(axis=0), np.cov(f, rowvar=False))


def save_statistics(
    path: str | os.PathLike, stats: Statistics, feature_net: str | None = None
) -> str:
    """Writes `mu` and `sigma` (and, if given, `feature_net`: the name of the network whose
    features they are) to an `.npz` that pytorch-fid reads too (a local path or a bucket
    URI); returns the path."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"  # np.savez would add it anyway; return the name that exists
    named = {} if feature_net is None else {"feature_net": np.asarray(feature_net)}
    buf = io.BytesIO()
    np.savez(buf, mu=np.asarray(stats.mu), sigma=np.asarray(stats.sigma), **named)
    epath.Path(path).parent.mkdir(parents=True, exist_ok=True)  # a local path needs its folder
    epath.Path(path).write_bytes(buf.getvalue())
    return path


def load_named_statistics(path: str | os.PathLike) -> tuple[Statistics, str | None]:
    """(statistics, the feature network's name, or None when the file names none, as
    pytorch-fid's and the FDRL authors' files do) from an `.npz` with `mu` and `sigma`."""
    path = os.fspath(path)
    if not epath.Path(path).exists():
        raise FileNotFoundError(f"No FID statistics file at {path!r}")
    with np.load(io.BytesIO(epath.Path(path).read_bytes())) as z:
        missing = {"mu", "sigma"} - set(z.files)
        if missing:
            raise ValueError(f"{path} lacks {sorted(missing)}; keys are {z.files}")
        name = str(z["feature_net"]) if "feature_net" in z.files else None
        return Statistics(z["mu"].astype(np.float64), z["sigma"].astype(np.float64)), name


def load_statistics(path: str | os.PathLike) -> Statistics:
    """Reads an `.npz` with keys `mu` and `sigma` (ours or pytorch-fid's `--save-stats`)."""
    return load_named_statistics(path)[0]


def _sqrtm_trace_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # tr (Σ₁Σ₂)^½ = Σ √λᵢ(Rᵀ Σ₂ R) for any Σ₁ = R Rᵀ: a symmetric PSD matrix, so eigvalsh is
    # stable and the result real. R is the Cholesky factor (cheap) or, for singular Σ₁ (fewer
    # samples than dimensions), the eigh square root; rounding's tiny negatives are clipped.
    try:
        root1 = np.linalg.cholesky(sigma1)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(sigma1)
        root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1.T @ sigma2 @ root1
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def _sqrtm_trace_scipy(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    # pytorch-fid's recipe: sqrtm of the product; retry with eps·I added if it is singular.
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm has imaginary part {np.max(np.abs(covmean.imag)):.3g}")
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(
    mu1: Any, sigma1: Any, mu2: Any, sigma2: Any, method: str = "eigh", eps: float = 1e-6
) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), in float64.

    method="eigh" (default) goes through symmetric eigendecompositions: real and stable for
    singular Σ (fewer samples than dimensions). method="sqrtm" is pytorch-fid's exact recipe
    (scipy.linalg.sqrtm, eps·I fallback, imaginary parts below 1e-3 dropped).
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"mismatched statistics: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}"
        )
    if method == "eigh":
        tr_covmean = _sqrtm_trace_eigh(s1, s2)
    elif method == "sqrtm":
        tr_covmean = _sqrtm_trace_scipy(s1, s2, eps)
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def fid_from_statistics(a: Statistics, b: Statistics, method: str = "eigh") -> float:
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method)


def make_feature_fn(apply_fn: Callable[..., Any], variables: Any) -> FeatureFn:
    """Jitted `images → apply_fn(variables, images)`, e.g. `make_feature_fn(net.apply, vars)`.

    The variables are passed as an argument rather than closed over, so large weights are not
    baked into the compiled program as constants.
    """
    jitted = jax.jit(apply_fn)
    return lambda images: jitted(variables, images)


def _fixed_size_batches(source: ImageSource, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(batch, n_valid) of exactly `batch_size` rows; the last is padded by repeating a row.

    A jitted feature network compiles once per input shape: re-batching to one shape means
    one compilation whatever batch sizes the source yields.
    """
    if isinstance(source, np.ndarray | jax.Array):
        array = source
        source = (array[i : i + batch_size] for i in range(0, array.shape[0], batch_size))
    pending: list[np.ndarray] = []
    held = 0
    for batch in source:
        batch = np.asarray(batch)
        pending.append(batch)
        held += batch.shape[0]
        while held >= batch_size:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            yield joined[:batch_size], batch_size
            rest = joined[batch_size:]
            pending, held = ([rest] if rest.shape[0] else []), rest.shape[0]
    if held:
        joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
        pad = np.repeat(joined[-1:], batch_size - held, axis=0)
        yield np.concatenate([joined, pad]), held


def compute_statistics(
    images: ImageSource,
    feature_fn: FeatureFn,
    batch_size: int = 100,
    max_samples: int | None = None,
) -> Statistics:
    """Feature statistics of an (N, H, W, C) array or an iterable of image batches.

    Images go to `feature_fn` in fixed-size batches; only μ and Σ are kept, so the number of
    images is unbounded. `max_samples` stops early (e.g. a subset of a long stream).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    running = RunningStatistics()
    dispatched = 0
    pending = None  # dispatch batch k+1 before pulling batch k's features to the host
    for batch, n_valid in _fixed_size_batches(images, batch_size):
        if max_samples is not None:
            n_valid = min(n_valid, max_samples - dispatched)
            if n_valid <= 0:
                break
        features = feature_fn(batch)
        dispatched += n_valid
        if pending is not None:
            running.update(np.asarray(pending[0])[: pending[1]])
        pending = (features, n_valid)
    if pending is not None:
        running.update(np.asarray(pending[0])[: pending[1]])
    return running.finalize()


def fid_from_images(
    images_a: ImageSource,
    images_b: ImageSource | Statistics,
    feature_fn: FeatureFn,
    batch_size: int = 100,
    method: str = "eigh",
) -> float:
    """FID between two image sets (or one set and precomputed reference statistics)."""
    stats_a = compute_statistics(images_a, feature_fn, batch_size)
    stats_b = (
        images_b
        if isinstance(images_b, Statistics)
        else compute_statistics(images_b, feature_fn, batch_size)
    )
    return fid_from_statistics(stats_a, stats_b, method=method)
