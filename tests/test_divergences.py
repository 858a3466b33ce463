import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import divergences as dv

jax.config.update("jax_enable_x64", False)

LOG_R = np.array([-80.0, -10.0, -1.0, 0.0, 0.5, 3.0, 10.0, 80.0])


def test_fprimes_equal_closed_forms_up_to_constants():
    r = np.exp(np.clip(LOG_R, -30, 30)).astype(np.float64)
    lr = np.log(r)
    # SPEC table: f'(r) and the constant each implementation drops.
    np.testing.assert_allclose(
        dv.chi2_fprime(jnp.asarray(r, jnp.float32)) - 2.0, 2 * (r - 1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        dv.kl_fprime(jnp.asarray(lr, jnp.float32)) + 1.0, lr + 1, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        dv.js_fprime(jnp.asarray(lr, jnp.float32)) + np.log(2.0),
        np.log(2 * r / (r + 1)),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        dv.logd_fprime(jnp.asarray(lr, jnp.float32)) + 1.0, np.log(r + 1) + 1, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ["kl", "js", "logd"])
def test_log_ratio_fprimes_finite_with_finite_gradients_at_extremes(name):
    f = dv.FPRIMES[name]
    out = jnp.asarray(LOG_R, jnp.float32)
    assert np.all(np.isfinite(f(out)))
    g = jax.vmap(jax.grad(f))(out)
    assert np.all(np.isfinite(g))
    # Asymptotes: JS → log r for r→0 and → 0 for r→∞; logD → 0 and → log r.
    if name == "js":
        np.testing.assert_allclose(f(out)[0], -80.0, rtol=1e-6)
        np.testing.assert_allclose(f(out)[-1], 0.0, atol=1e-6)
    if name == "logd":
        np.testing.assert_allclose(f(out)[0], 0.0, atol=1e-6)
        np.testing.assert_allclose(f(out)[-1], 80.0, rtol=1e-6)


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def test_losses_equal_closed_forms():
    rng = np.random.default_rng(0)
    out_q, out_p = rng.normal(size=100), rng.normal(size=120)
    q, p = jnp.asarray(out_q, jnp.float32), jnp.asarray(out_p, jnp.float32)
    np.testing.assert_allclose(
        dv.lsif_loss(q, p), np.mean(0.5 * out_p**2) - np.mean(out_q), rtol=1e-5
    )
    # LR = BCE: flowed samples labelled 1 with p(1|x) = σ(log r), data labelled 0.
    sig = 1 / (1 + np.exp(-np.r_[out_q, out_p]))
    bce = -np.mean(np.log(sig[:100])) - np.mean(np.log(1 - sig[100:]))
    np.testing.assert_allclose(dv.lr_loss(q, p), bce, rtol=1e-5)
    np.testing.assert_allclose(
        dv.kliep_loss(q, p), np.mean(np.exp(out_p)) - np.mean(out_q), rtol=1e-5
    )


@pytest.mark.parametrize("name", ["lr", "kliep", "lsif"])
def test_losses_finite_at_extreme_outputs(name):
    out = jnp.asarray(LOG_R, jnp.float32)
    loss = dv.LOSSES[name]
    val, grads = jax.value_and_grad(lambda a, b: loss(a, b), argnums=(0, 1))(out, out[::-1])
    assert np.isfinite(val)
    assert all(np.all(np.isfinite(g)) for g in grads)
    if name == "lr":
        expected = np.mean(_np_softplus(LOG_R[::-1])) + np.mean(_np_softplus(-LOG_R))
        np.testing.assert_allclose(val, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "loss,div", [("lsif", "chi2"), ("lr", "kl"), ("lr", "js"), ("lr", "logd"), ("kliep", "kl")]
)
def test_valid_pairings_pass(loss, div):
    dv.check_pairing(loss, div)


@pytest.mark.parametrize(
    "loss,div",
    [("lsif", "kl"), ("lsif", "js"), ("lsif", "logd"), ("lr", "chi2"), ("kliep", "chi2")],
)
def test_invalid_pairing_is_a_clear_error(loss, div):
    with pytest.raises(ValueError, match="Invalid pairing.*pairs with"):
        dv.check_pairing(loss, div)


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="Unknown divergence 'hellinger'.*choose one of"):
        dv.get_fprime("hellinger")
    with pytest.raises(ValueError, match="Unknown loss 'ulsif'.*choose one of"):
        dv.get_loss("ulsif")


def test_bregman_loss_by_name_is_the_registered_loss_and_its_closed_form():
    import fdrl_jax as fd

    rng = np.random.default_rng(0)
    q, p = jnp.asarray(rng.normal(size=64)), jnp.asarray(rng.normal(size=64))
    for name, fn in dv.LOSSES.items():
        np.testing.assert_allclose(fd.bregman_loss(name, q, p), fn(q, p), rtol=1e-6)
        jitted = jax.jit(fd.bregman_loss, static_argnums=0)
        np.testing.assert_allclose(jitted(name, q, p), fn(q, p), rtol=1e-6)
    np.testing.assert_allclose(  # LSIF, g(y) = ½(y − 1)²: E_p[r²]/2 − E_q[r]
        fd.bregman_loss("lsif", q, p), np.mean(0.5 * np.square(p)) - np.mean(q), rtol=1e-6
    )
    np.testing.assert_allclose(  # LR: BCE, flowed labelled 1, data 0
        fd.bregman_loss("lr", q, p),
        np.mean(np.log1p(np.exp(p))) + np.mean(np.log1p(np.exp(-q))),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="Unknown loss"):
        fd.bregman_loss("ulsif", q, p)
