"""f' and the Bregman losses (`divergences.py`): closed forms, finite values at extreme
outputs, pairings, names, and minimisers that recover a known density ratio."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fdrl_jax import divergences as dv
from fdrl_jax.models import MLP

jax.config.update("jax_enable_x64", False)

LOG_R = np.array([-80.0, -10.0, -1.0, 0.0, 0.5, 3.0, 10.0, 80.0])


def test_fprimes_equal_closed_forms_up_to_constants():
    r = np.exp(np.clip(LOG_R, -30, 30)).astype(np.float64)
    lr = np.log(r)
    # The paper's Table 2: f'(r) and the constant each implementation drops.
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


MU = jnp.array([0.5, 0.0])  # q = N(MU, I) over p = N(0, I): log r(x) = MU·x − |MU|²/2
FIT = {"steps": 1500, "lr": 1e-3}  # Adam; the margins over seeds: learning_margin.py --test=ratio


def fit_ratio(loss_name: str, seed: int = 0, steps: int = FIT["steps"], lr: float = FIT["lr"]):
    """The MLP estimator fitted by `loss_name` to q over p (1,024 of each per step): (its mean
    absolute error in log r and correlation with the true log r where p has its mass, the
    loss at the fit on 200,000 draws)."""
    model, key = MLP(), jax.random.PRNGKey(seed)
    params = model.init(key, jnp.zeros((1, 2)))["params"]
    tx = optax.adam(lr)

    def loss(p, k, n=1024):
        kq, kp = jax.random.split(k)
        xq = jax.random.normal(kq, (n, 2)) + MU
        xp = jax.random.normal(kp, (n, 2))
        return dv.LOSSES[loss_name](model.apply({"params": p}, xq), model.apply({"params": p}, xp))

    @jax.jit
    def fit(params):  # one program: no dispatch per step
        def step(i, carry):
            p, o = carry
            u, o = tx.update(jax.grad(loss)(p, jax.random.fold_in(key, i)), o, p)
            return optax.apply_updates(p, u), o

        return jax.lax.fori_loop(0, steps, step, (params, tx.init(params)))[0]

    params = fit(params)
    x = jax.random.normal(jax.random.PRNGKey(1), (2000, 2))  # where p has its mass
    true_log_r = x @ MU - 0.5 * MU @ MU
    out = model.apply({"params": params}, x)
    est = jnp.log(jnp.maximum(out, 1e-6)) if dv.LOSS_OUTPUT[loss_name] == "ratio" else out
    mae = float(jnp.mean(jnp.abs(est - true_log_r)))
    return mae, float(jnp.corrcoef(est, true_log_r)[0, 1]), float(loss(params, key, 200_000))


@pytest.mark.slow  # 1,500 Adam steps per loss
@pytest.mark.parametrize("loss_name", ["lsif", "lr", "kliep"])
def test_minimiser_recovers_the_analytic_ratio(loss_name):
    mae, corr, at_fit = fit_ratio(loss_name)
    assert mae < 0.08 and corr > 0.98, (mae, corr)
    # The minimum of each loss in closed form at the true ratio (r = e^{log r}):
    # LSIF: −½E_q[r] = −½e^{|μ|²}; KLIEP: 1 − E_q[log r] = 1 − |μ|²/2.
    if loss_name == "lsif":
        np.testing.assert_allclose(at_fit, -0.5 * np.exp(0.25), atol=0.03)
    if loss_name == "kliep":
        np.testing.assert_allclose(at_fit, 1 - 0.125, atol=0.03)
