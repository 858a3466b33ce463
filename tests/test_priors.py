import jax
import ml_collections
import numpy as np
import pytest

from fdrl_jax import priors


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
