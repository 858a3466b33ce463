"""Priors (`priors.py`): the data-dependent prior's fit (full and low-rank, streaming) and
draws, the simple priors, the dataset prior of translation, and clear errors; the fitted prior
stored in the run directory is reused only for the same settings (`run/files.py`)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from helpers import configs

from fdrl_jax import configlib, priors
from fdrl_jax.data import ImageData
from fdrl_jax.experiment import build_experiment
from fdrl_jax.run import files


def test_ddp_fit_recovers_mean_and_covariance():
    rng = np.random.default_rng(0)
    mean = np.array([0.5, -1.0, 2.0])
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    x = rng.multivariate_normal(mean, cov, size=200_000)
    prior = priors.fit_full_covariance(x)
    np.testing.assert_allclose(prior.mean, mean, atol=0.02)
    np.testing.assert_allclose(
        priors.covariance_of(prior), cov + 1e-4 * np.eye(3), rtol=0.03, atol=0.02
    )
    # Exactly the biased sample statistics (+ jitter), and samples carry them.
    np.testing.assert_allclose(
        priors.covariance_of(prior), np.cov(x.T, bias=True) + 1e-4 * np.eye(3), rtol=1e-4, atol=1e-5
    )
    s = np.asarray(prior.sample(jax.random.PRNGKey(0), 200_000))
    np.testing.assert_allclose(np.cov(s.T), cov, rtol=0.05, atol=0.03)


def test_ddp_keeps_the_event_shape():
    x = np.random.default_rng(0).normal(size=(500, 2, 2, 1))
    s = priors.fit_full_covariance(x).sample(jax.random.PRNGKey(0), 7)
    assert s.shape == (7, 2, 2, 1)


def test_gaussian_and_uniform_priors():
    g = priors.gaussian_prior((2,), mean=6.0, std=0.5).sample(jax.random.PRNGKey(0), 50_000)
    np.testing.assert_allclose(np.mean(g, 0), [6.0, 6.0], atol=0.01)
    np.testing.assert_allclose(np.std(g, 0), [0.5, 0.5], rtol=0.02)
    u = np.asarray(priors.uniform_prior((3,)).sample(jax.random.PRNGKey(0), 50_000))
    assert u.min() >= -1 and u.max() <= 1
    np.testing.assert_allclose(u.var(), 1 / 3, rtol=0.02)


def test_unknown_prior_is_a_clear_error():
    cfg = ml_collections.ConfigDict({"name": "laplace"})
    with pytest.raises(ValueError, match="Unknown prior 'laplace'.*prior.name"):
        priors.build_prior(cfg, (2,), lambda: None)


def test_ddp_needs_data_of_the_right_shape():
    with pytest.raises(ValueError, match="N>=2"):
        priors.fit_full_covariance(np.zeros((1, 3)))


def _low_rank_plus_diag(d=40, k=4, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, k)) * np.linspace(2.0, 1.0, k)
    return a @ a.T + 0.01 * np.eye(d), rng


def test_streaming_fit_equals_the_one_batch_fit():
    x = np.random.default_rng(1).normal(size=(3000, 2, 3, 1))
    one = priors.fit_full_covariance(x)
    streamed = priors.fit_gaussian(np.array_split(x, 7), form="full")
    np.testing.assert_allclose(streamed.mean, one.mean, atol=1e-6)
    np.testing.assert_allclose(streamed.chol, one.chol, atol=1e-5)
    assert streamed.shape == (2, 3, 1)


def test_the_full_fit_forms_its_covariance_in_place():
    """Σ + jitter·I overwrites the summed second moments (no second D×D buffer), which is what
    keeps the full fit at LSUN Church's D = 49,152 to two float64 arrays (39 GB)."""
    d, n = 16, 50
    x = np.random.default_rng(2).normal(size=(n, d))
    with jax.enable_x64(True):
        second, mu = jnp.asarray(x.T @ x), jnp.asarray(x.mean(0))
        compiled = priors._jittered_covariance.lower(second, mu, n, 1e-4).compile()
        assert compiled.memory_analysis().alias_size_in_bytes == d * d * 8
        cov = priors._jittered_covariance(second, mu, n, 1e-4)
        assert second.is_deleted()
        np.testing.assert_allclose(cov, np.cov(x.T, bias=True) + 1e-4 * np.eye(d), atol=1e-12)


def test_both_forms_recover_a_known_covariance():
    cov, rng = _low_rank_plus_diag()
    mean = rng.normal(size=40)
    x = rng.multivariate_normal(mean, cov, size=100_000)
    batches = np.array_split(x, 20)
    full = priors.fit_gaussian(batches, form="full")
    low = priors.fit_gaussian(batches, form="lowrank", rank=4)
    for p in (full, low):
        np.testing.assert_allclose(p.mean, mean, atol=0.03)
        err = np.linalg.norm(priors.covariance_of(p) - cov) / np.linalg.norm(cov)
        assert err < 0.02, err
    assert low.factors.shape == (40, 4)


def test_lowrank_samples_have_the_fitted_covariance():
    cov, rng = _low_rank_plus_diag(d=20, k=3)
    x = rng.multivariate_normal(np.zeros(20), cov, size=20_000)
    prior = priors.to_device(priors.fit_gaussian([x], form="lowrank", rank=3))
    s = np.asarray(prior.sample(jax.random.PRNGKey(0), 400_000))
    fitted = priors.covariance_of(prior)
    assert np.linalg.norm(np.cov(s.T) - fitted) / np.linalg.norm(fitted) < 0.01


def test_fitted_prior_is_stored_and_reused_only_for_the_same_settings(tmp_path):
    x = np.random.default_rng(0).normal(size=(500, 3))
    p = priors.fit_gaussian([x], form="lowrank", rank=2)
    path = str(tmp_path / "prior.npz")
    files.save_prior(path, p, "fp-1")
    back = files.load_prior(path, "fp-1")
    np.testing.assert_allclose(back.factors, p.factors)
    assert isinstance(back, priors.LowRankPrior) and back.shape == (3,)
    assert files.load_prior(path, "fp-2") is None
    (tmp_path / "prior.npz").write_bytes(b"garbage")
    assert files.load_prior(path, "fp-1") is None  # unreadable: fit again, never crash


def test_unknown_prior_form_is_a_clear_error():
    with pytest.raises(ValueError, match="prior.form"):
        priors.fit_gaussian([np.zeros((3, 2))], form="diag")


def test_ddp_sample_is_mu_plus_l_eps_and_has_the_fitted_law():
    import fdrl_jax as fd

    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    x = rng.normal(size=(4000, 3)) @ a.T + np.array([1.0, -2.0, 0.5])
    full = fd.fit_full_covariance(x)
    key = jax.random.PRNGKey(3)
    draws = fd.ddp_sample(full, key, 5)
    eps = jax.random.normal(key, (5, 3))
    np.testing.assert_allclose(draws, full.mean + eps @ full.chol.T, rtol=1e-5, atol=1e-5)
    many = np.asarray(jax.jit(fd.ddp_sample, static_argnums=2)(full, key, 200_000))
    np.testing.assert_allclose(many.mean(0), full.mean, atol=0.02)
    np.testing.assert_allclose(np.cov(many.T), priors.covariance_of(full), rtol=0.03, atol=0.02)
    low = priors.fit_gaussian([x], form="lowrank", rank=2)
    many = np.asarray(fd.ddp_sample(priors.to_device(low), key, 200_000))
    np.testing.assert_allclose(np.cov(many.T), priors.covariance_of(low), rtol=0.03, atol=0.02)
    with pytest.raises(TypeError, match="data-dependent prior"):
        fd.ddp_sample(priors.gaussian_prior((3,)), key, 2)


def test_dataset_prior_draws_source_images_inside_jit():
    config = configlib.load_config(configs("digits_translate.py:smoke"))
    exp = build_experiment(config)
    assert isinstance(exp.prior, ImageData) and exp.prior.shape == (8, 8, 1)
    x = jax.jit(lambda p, k: p.sample(k, 5))(exp.prior, jax.random.PRNGKey(0))
    assert x.shape == (5, 8, 8, 1) and float(jnp.abs(x).max()) < 1.3  # [-1, 1] + noise


def test_dataset_prior_errors_name_the_section():
    config = configlib.load_config(configs("digits_translate.py:smoke"))
    config.prior.source.size = 6  # 8×8 digits cropped to 6×6: not the data's shape
    config.prior.source.name = "synthetic"
    with pytest.raises(ValueError, match=r"prior.source.size"):
        build_experiment(config)
    config.prior.source.name = "npz"
    config.prior.source.path = "/nonexistent.npz"
    with pytest.raises(FileNotFoundError, match="prior.source"):
        build_experiment(config)
    config.prior.source.name = "swissroll"
    with pytest.raises(ValueError, match="prior.source.name"):
        build_experiment(config)
