"""FID (`evaluation/fid.py`): the Fréchet distance against scipy and closed forms, streaming
statistics, the pytorch-fid file format (naming the network that made them), and FID with a
small feature network."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from fdrl_jax.evaluation import fid


def _random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    a = rng.normal(size=(d, 2 * d))
    return a @ a.T / (2 * d) + 0.1 * np.eye(d)


def _pytorch_fid_reference(mu1, s1, mu2, s2) -> float:
    # pytorch-fid's calculate_frechet_distance, written out independently.
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_distance_matches_scipy_reference(method):
    rng = np.random.default_rng(0)
    for d in (3, 64):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        ours = fid.frechet_distance(mu1, s1, mu2, s2, method=method)
        np.testing.assert_allclose(ours, _pytorch_fid_reference(mu1, s1, mu2, s2), rtol=1e-6)


def test_frechet_distance_closed_form_for_commuting_covariances():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 2.0])
    # Diagonal Σ: FID = |Δμ|² + Σ(√a − √b)² = 9 + 1 + 1 + 0.
    np.testing.assert_allclose(fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), 11.0)


def test_frechet_distance_is_zero_for_identical_statistics():
    rng = np.random.default_rng(1)
    mu, s = rng.normal(size=128), _random_spd(rng, 128)
    for method in ("eigh", "sqrtm"):
        assert abs(fid.frechet_distance(mu, s, mu, s, method=method)) < 1e-8 * np.trace(s)


def test_frechet_distance_handles_singular_covariances():
    # Fewer samples than dimensions (rank-deficient Σ): still real, finite and ≥ 0.
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(10, 32)) + 0.5
    sa, sb = fid.statistics_from_features(a), fid.statistics_from_features(b)
    value = fid.fid_from_statistics(sa, sb)
    assert np.isfinite(value) and value > 0
    # √ of eigenvalues that are zero up to rounding (~1e-16) leaves ~1e-8 each.
    assert abs(fid.fid_from_statistics(sa, sa)) < 1e-6 * np.trace(sa.sigma)


def test_mismatched_statistics_are_rejected():
    with pytest.raises(ValueError, match="mismatched"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_streaming_statistics_equal_numpy_mean_and_unbiased_cov():
    rng = np.random.default_rng(3)
    # A large offset checks the centred (Chan) update against cancellation.
    x = rng.normal(size=(517, 20)) * rng.uniform(0.1, 3, size=20) + 1e3
    running = fid.RunningStatistics()
    for lo, hi in [(0, 1), (1, 100), (100, 101), (101, 400), (400, 517)]:
        running.update(x[lo:hi])
    mu, sigma = running.finalize()
    assert running.count == 517
    np.testing.assert_allclose(mu, np.mean(x, axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        fid.RunningStatistics().update(x[:1]).finalize()


def test_statistics_npz_round_trip_has_pytorch_fid_keys(tmp_path):
    rng = np.random.default_rng(4)
    stats = fid.statistics_from_features(rng.normal(size=(50, 8)))
    path = fid.save_statistics(tmp_path / "ref", stats)
    assert path.endswith("ref.npz")
    with np.load(path) as z:
        assert sorted(z.files) == ["mu", "sigma"]
    loaded = fid.load_statistics(path)
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        fid.load_statistics(tmp_path / "missing.npz")


def test_statistics_files_name_their_network_and_stay_pytorch_fid_files(tmp_path):
    stats0 = fid.statistics_from_features(np.random.default_rng(0).normal(size=(20, 4)))
    path = fid.save_statistics(tmp_path / "s", stats0, feature_net="torchvision")
    stats, name = fid.load_named_statistics(path)
    assert name == "torchvision" and np.array_equal(stats.mu, stats0.mu)
    with np.load(path) as z:  # what pytorch-fid reads: mu and sigma, no pickles
        assert {"mu", "sigma"} <= set(z.files)
    unnamed = fid.save_statistics(tmp_path / "u", stats0)
    assert fid.load_named_statistics(unnamed)[1] is None


class _TinyFeatureNet(nn.Module):
    """A random conv net standing in for Inception."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = nn.relu(nn.Conv(16, (3, 3), strides=2)(x))
        return nn.Dense(16)(jnp.mean(x, axis=(1, 2)))


def _tiny_feature_fn():
    net = _TinyFeatureNet()
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
    return fid.make_feature_fn(net.apply, variables)


def _images(rng, n, smooth):
    noise = rng.normal(size=(n, 16, 16, 3)).astype(np.float32)
    if smooth:  # a different law: blurred along width, brighter
        noise = (noise + np.roll(noise, 1, axis=2) + np.roll(noise, -1, axis=2)) / 3 + 0.3
    return np.tanh(noise)


def test_compute_statistics_rebatches_to_one_shape():
    rng = np.random.default_rng(5)
    x = _images(rng, 230, smooth=False)
    inner = _tiny_feature_fn()
    shapes = []

    def feature_fn(batch):
        shapes.append(batch.shape)
        return inner(batch)

    uneven = [x[:7], x[7:100], x[100:101], x[101:230]]
    a = fid.compute_statistics(iter(uneven), feature_fn, batch_size=64)
    assert set(shapes) == {(64, 16, 16, 3)}  # one compilation, the tail padded
    b = fid.compute_statistics(x, inner, batch_size=50)
    reference = fid.statistics_from_features(np.asarray(inner(x)))
    for s in (a, b):
        np.testing.assert_allclose(s.mu, reference.mu, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(s.sigma, reference.sigma, rtol=1e-4, atol=1e-6)
    head = fid.compute_statistics(x, inner, batch_size=64, max_samples=100)
    np.testing.assert_allclose(head.mu, np.asarray(inner(x[:100])).mean(0), rtol=1e-5, atol=1e-6)


def test_fid_with_a_small_flax_feature_network():
    rng = np.random.default_rng(6)
    feature_fn = _tiny_feature_fn()
    a, b = _images(rng, 800, smooth=False), _images(rng, 400, smooth=True)
    self_fid = fid.fid_from_images(a, a, feature_fn, batch_size=200)
    halves = fid.fid_from_images(a[:400], a[400:], feature_fn, batch_size=200)
    other = fid.fid_from_images(a[:400], b, feature_fn, batch_size=200)
    assert abs(self_fid) < 1e-6
    assert 0 < halves < other / 10, (halves, other)
    # Reference statistics computed once can stand in for the second set.
    ref = fid.compute_statistics(b, feature_fn, batch_size=200)
    np.testing.assert_allclose(fid.fid_from_images(a[:400], ref, feature_fn, 200), other)
