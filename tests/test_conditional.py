"""Class-conditional sampling (`conditional.py`): the composed ratio (Eq. 12 / 29-31) in closed
form, φ = 0 the unconditional flow exactly, and each sample pulled towards its own label."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import algorithms, conditional, divergences, flows, priors
from fdrl_jax.models import MLP

N = 4  # classes


def _estimator(d=3):
    net = MLP(hidden=16, num_hidden_layers=2)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, d)))
    return net.apply, params


def _linear_classifier(d=3):
    w = jax.random.normal(jax.random.PRNGKey(7), (d, N))
    return lambda x: jnp.tanh(x) @ w  # logits (B, N)


def _grad(potential, x):
    return jax.grad(lambda y: jnp.sum(potential(y)))(x)


X = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
LABELS = jnp.arange(6) % N


@pytest.mark.parametrize("div", ["chi2", "kl", "js", "logd"])
def test_a_uniform_classifier_leaves_the_flow_unconditional(div):
    apply_fn, params = _estimator()
    fprime, output = divergences.FPRIMES[div], divergences.FPRIME_INPUT[div]
    uniform = lambda x: jnp.zeros((x.shape[0], N))  # p(y|x) = 1/N: N p = 1  # noqa: E731
    cond = conditional.make_conditional_potential(
        apply_fn, params, fprime, output, uniform, LABELS, phi=0.7
    )
    uncond = lambda x: fprime(apply_fn(params, x))  # noqa: E731
    np.testing.assert_allclose(_grad(cond, X), _grad(uncond, X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("div", ["chi2", "kl", "js", "logd"])
def test_phi_zero_gives_the_unconditional_samples_exactly(div):
    apply_fn, params = _estimator()
    fprime, output = divergences.FPRIMES[div], divergences.FPRIME_INPUT[div]
    prior = priors.gaussian_prior((3,))
    key = jax.random.PRNGKey(11)
    kw = {"num_steps": 20, "eta": 0.1, "nu": 0.01}
    ref = algorithms.sample(flows.make_potential(apply_fn, params, fprime), prior, key, 6, **kw)
    classifier = _linear_classifier()
    composed = conditional.make_conditional_potential(
        apply_fn, params, fprime, output, lambda x: 5.0 * classifier(x), LABELS, phi=0.0
    )
    got = algorithms.sample(composed, prior, key, 6, **kw)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_kl_is_eq31_and_phi_one_is_eq12():
    apply_fn, params = _estimator()
    logits = _linear_classifier()
    phi = 0.3
    cond = conditional.make_conditional_potential(
        apply_fn, params, divergences.kl_fprime, "log_ratio", logits, LABELS, phi
    )

    def log_p(x):
        return jnp.take_along_axis(jax.nn.log_softmax(logits(x)), LABELS[:, None], 1)[:, 0]

    # Eq. 31: ∇(log r − φ log p(y|x))
    eq31 = lambda x: apply_fn(params, x) - phi * log_p(x)  # noqa: E731
    np.testing.assert_allclose(_grad(cond, X), _grad(eq31, X), rtol=1e-5, atol=1e-6)
    # Eq. 12 / 29 at φ = 1: log r(x|y) = log r(x) − log N − log p(y|x), value and all
    out = apply_fn(params, X)
    lr = conditional.log_class_ratio(logits(X), LABELS)
    np.testing.assert_allclose(
        conditional.compose_output(out, lr, 1.0, "log_ratio"),
        out - jnp.log(N) - log_p(X),
        rtol=1e-6,
        atol=1e-6,
    )


def test_lsif_chi2_divides_the_ratio():
    apply_fn, params = _estimator()
    logits = _linear_classifier()
    phi = 0.5
    cond = conditional.make_conditional_potential(
        apply_fn, params, divergences.chi2_fprime, "ratio", logits, LABELS, phi
    )
    p = jnp.take_along_axis(jax.nn.softmax(logits(X)), LABELS[:, None], 1)[:, 0]
    expected = 2.0 * apply_fn(params, X) / (N * p) ** phi  # f'(r / (N p)^φ), f' = 2r
    np.testing.assert_allclose(cond(X), expected, rtol=1e-5)


def test_each_sample_flows_towards_its_own_label():
    # log r ≡ 0 (no pull from the estimator); the classifier prefers +x₀ for class 0 and −x₀
    # for class 1, so with KL the flow is gradient ascent on φ log p(y|x) per sample.
    labels = jnp.array([0, 1] * 50)
    potential = conditional.make_conditional_potential(
        lambda v, x: jnp.zeros(x.shape[0]),
        None,
        divergences.kl_fprime,
        "log_ratio",
        lambda x: jnp.stack([x[:, 0], -x[:, 0]], -1),
        labels,
        phi=1.0,
    )
    x = algorithms.sample(
        potential,
        priors.gaussian_prior((2,)),
        jax.random.PRNGKey(0),
        100,
        num_steps=50,
        eta=0.5,
        nu=0.0,
    )
    assert np.all(np.asarray(x[labels == 0, 0]) > 1.0)
    assert np.all(np.asarray(x[labels == 1, 0]) < -1.0)
