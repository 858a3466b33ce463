"""The Bregman-loss minimisers recover a known density ratio (two Gaussians)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fdrl_jax import divergences as dv
from fdrl_jax.models import MLP

MU = jnp.array([0.5, 0.0])  # q = N(MU, I) over p = N(0, I): log r(x) = MU·x − |MU|²/2


@pytest.mark.slow  # 1,500 Adam steps per loss
@pytest.mark.parametrize("loss_name", ["lsif", "lr", "kliep"])
def test_minimiser_recovers_the_analytic_ratio(loss_name):
    model, key = MLP(), jax.random.PRNGKey(0)
    params = model.init(key, jnp.zeros((1, 2)))["params"]
    tx = optax.adam(1e-3)
    opt = tx.init(params)

    def loss(p, k, n=1024):
        kq, kp = jax.random.split(k)
        xq = jax.random.normal(kq, (n, 2)) + MU
        xp = jax.random.normal(kp, (n, 2))
        return dv.LOSSES[loss_name](model.apply({"params": p}, xq), model.apply({"params": p}, xp))

    @jax.jit
    def step(p, o, k):
        g = jax.grad(loss)(p, k)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o

    for i in range(1500):
        params, opt = step(params, opt, jax.random.fold_in(key, i))
    x = jax.random.normal(jax.random.PRNGKey(1), (2000, 2))  # where p has its mass
    true_log_r = x @ MU - 0.5 * MU @ MU
    out = model.apply({"params": params}, x)
    est = jnp.log(jnp.maximum(out, 1e-6)) if dv.LOSS_OUTPUT[loss_name] == "ratio" else out
    assert float(jnp.mean(jnp.abs(est - true_log_r))) < 0.08
    assert float(jnp.corrcoef(est, true_log_r)[0, 1]) > 0.98
    # The minimum of each loss in closed form at the true ratio (r = e^{log r}):
    # LSIF: −½E_q[r] = −½e^{|μ|²}; KLIEP: 1 − E_q[log r] = 1 − |μ|²/2.
    if loss_name == "lsif":
        np.testing.assert_allclose(
            float(loss(params, key, 200_000)), -0.5 * np.exp(0.25), atol=0.03
        )
    if loss_name == "kliep":
        np.testing.assert_allclose(float(loss(params, key, 200_000)), 1 - 0.125, atol=0.03)
