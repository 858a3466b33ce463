"""The particle flow (`flows.py`): closed forms, the noise scale, an ideal estimator's flow,
split and recorded flows, stopped gradients, one compiled program for every length, and the
step size per divergence (`flow.normalise_eta`) on an analytic ratio."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fdrl_jax import divergences
from fdrl_jax import flows as fl


def _quadratic(m):
    # The potential ½|x - m|²: the flow x ← x − η(x − m) has the closed form
    # x_k − m = (1 − η)^k (x_0 − m) when ν = 0.
    return lambda x: 0.5 * jnp.sum(jnp.square(x - m), axis=-1)


def test_deterministic_flow_matches_closed_form():
    m = jnp.array([3.0, -1.0])
    x0 = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    xk = fl.flow(_quadratic(m), x0, jax.random.PRNGKey(1), 10, eta=0.2, nu=0.0)
    np.testing.assert_allclose(xk - m, (0.8**10) * (x0 - m), rtol=1e-5, atol=1e-6)


def test_package_level_flow_and_flow_step_are_the_library_functions():
    import fdrl_jax as fd

    m = jnp.array([3.0, -1.0])
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    one = fd.flow_step(_quadratic(m), x0, jax.random.PRNGKey(1), 0.2, 0.0)
    np.testing.assert_allclose(one - m, 0.8 * (x0 - m), rtol=1e-5, atol=1e-6)  # closed form
    assert fd.flow is fl.flow and fd.flow_step is fl.flow_step


def test_noise_has_the_expected_scale():
    x0 = jnp.zeros((20_000, 2))
    xk = fl.flow(lambda x: jnp.zeros(x.shape[0]), x0, jax.random.PRNGKey(0), 4, eta=1.0, nu=0.1)
    # Four independent N(0, 0.1²) increments: std 0.2.
    np.testing.assert_allclose(np.std(np.asarray(xk)), 0.2, rtol=0.02)


def test_flow_step_by_hand_with_noise_at_eta_and_nu_not_one():
    # x ← x − η (x − m) + ν ξ_k, ξ_k = N(0, I) from fold_in(key, k); η = 0.3, ν = 0.05.
    m, eta, nu, key = jnp.array([3.0, -1.0]), 0.3, 0.05, jax.random.PRNGKey(5)
    x0 = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    x = np.asarray(x0, np.float64)
    for k in range(4):
        xi = np.asarray(jax.random.normal(jax.random.fold_in(key, k), x0.shape))
        x = x - eta * (x - np.asarray(m)) + nu * xi
    np.testing.assert_allclose(fl.flow(_quadratic(m), x0, key, 4, eta=eta, nu=nu), x, atol=1e-5)
    one = fl.flow_step(_quadratic(m), x0, jax.random.fold_in(key, 0), eta, nu)
    xi0 = jax.random.normal(jax.random.fold_in(key, 0), x0.shape)
    np.testing.assert_allclose(one, x0 - eta * (x0 - m) + nu * xi0, atol=1e-6)


def test_flow_with_analytic_ratio_moves_particles_to_the_target():
    # KL flow with the exact ratio r = q_k/p for p = N(m, I), where q_k = N(mu_k, I) is the
    # particles' current law (mu_k their mean): the potential an ideal estimator provides.
    m = jnp.array([2.0, 2.0])
    x = jax.random.normal(jax.random.PRNGKey(0), (2048, 2))
    key = jax.random.PRNGKey(1)

    @jax.jit
    def step(x, k):
        mu_q = jnp.mean(x, axis=0)

        def log_r(y):
            return -0.5 * jnp.sum((y - mu_q) ** 2, -1) + 0.5 * jnp.sum((y - m) ** 2, -1)

        return fl.flow(log_r, x, jax.random.fold_in(key, k), 1, eta=0.1, nu=0.0)

    for k in range(40):
        x = step(x, k)
    np.testing.assert_allclose(np.mean(np.asarray(x), axis=0), np.asarray(m), atol=0.05)


def test_split_flow_and_trajectory_equal_one_flow():
    m = jnp.array([1.0, 0.5])
    pot = _quadratic(m)
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    key = jax.random.PRNGKey(3)
    full = fl.flow(pot, x0, key, 12, 0.1, 0.05)
    first = fl.flow(pot, x0, key, 5, 0.1, 0.05)
    second = fl.flow(pot, first, key, 7, 0.1, 0.05, start_step=5)
    np.testing.assert_allclose(second, full, rtol=1e-6)
    xk, traj = fl.flow(pot, x0, key, 12, 0.1, 0.05, record_at=(0, 5, 12))
    np.testing.assert_allclose(xk, full, rtol=1e-6)
    np.testing.assert_allclose(traj[0], x0)
    np.testing.assert_allclose(traj[1], first, rtol=1e-6)
    np.testing.assert_allclose(traj[2], full, rtol=1e-6)


def test_no_gradient_flows_back_through_the_chain():
    def end_sum(x0):
        return jnp.sum(fl.flow(_quadratic(jnp.ones(2)), x0, jax.random.PRNGKey(0), 3, 0.1, 0.0))

    g = jax.grad(end_sum)(jnp.ones((4, 2)))
    np.testing.assert_array_equal(g, np.zeros((4, 2)))


def test_make_potential_composes_network_and_fprime():
    pot = fl.make_potential(lambda p, x: p * jnp.sum(x, -1), 2.0, lambda o: 3.0 * o)
    np.testing.assert_allclose(pot(jnp.ones((2, 3))), [18.0, 18.0])


def test_run_time_length_equals_the_static_flow_exactly_with_one_compile():
    pot = _quadratic(jnp.array([1.0, -0.5]))
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    key = jax.random.PRNGKey(3)
    body = chex.assert_max_traces(
        lambda x, k, n, s: fl.flow(pot, x, k, n, 0.1, 0.05, start_step=s), n=1
    )
    dynamic = jax.jit(body)  # one program for every length: a second trace fails the test
    for n, s in ((5, 0), (12, 0), (0, 0), (7, 5), (1, 3)):
        static = jax.jit(lambda x, k, n=n, s=s: fl.flow(pot, x, k, n, 0.1, 0.05, start_step=s))
        np.testing.assert_array_equal(dynamic(x0, key, np.int32(n), np.int32(s)), static(x0, key))


def test_run_time_length_of_a_conv_net_flow_equals_the_static_one():
    from fdrl_jax.models import ResNetEstimator

    net = ResNetEstimator(arch="", stem=4, stages=((4, 1, 1), (8, 1, 2)))
    x0 = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 8, 3), minval=-1, maxval=1)
    v = net.init(jax.random.PRNGKey(1), x0)
    pot = fl.make_potential(net.apply, v, lambda o: 2.0 * o)
    key = jax.random.PRNGKey(2)
    dynamic = jax.jit(lambda x, n: fl.flow(pot, x, key, n, 3.0, 0.01))(x0, np.int32(3))
    static = jax.jit(lambda x: fl.flow(pot, x, key, 3, 3.0, 0.01))(x0)
    np.testing.assert_array_equal(dynamic, static)


def test_run_time_record_at_equals_the_static_trajectory():
    pot = _quadratic(jnp.array([1.0, 0.5]))
    x0 = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    key = jax.random.PRNGKey(3)
    run = jax.jit(
        chex.assert_max_traces(
            lambda x, n, marks: fl.flow(pot, x, key, n, 0.1, 0.05, record_at=marks), n=1
        )
    )
    for n, marks in ((12, (0, 5, 12)), (9, (9, 2, 2)), (20, (20, 0, 13))):  # any order, repeats
        want_x = fl.flow(pot, x0, key, n, 0.1, 0.05)
        x, traj = run(x0, np.int32(n), np.asarray(marks, np.int32))
        np.testing.assert_array_equal(x, want_x)
        for frame, m in zip(traj, marks, strict=True):
            np.testing.assert_array_equal(frame, fl.flow(pot, x0, key, m, 0.1, 0.05))
        # the static-marks form is the same single loop
        _, traj_s = fl.flow(pot, x0, key, n, 0.1, 0.05, record_at=marks)
        np.testing.assert_array_equal(traj_s, traj)
    # a run-time mark past the end is never reached: its frame says so
    _, traj = run(x0, np.int32(4), np.asarray([2, 6, 4], np.int32))
    traj = np.asarray(traj)
    assert np.isnan(traj[1]).all() and np.isfinite(traj[[0, 2]]).all()


def test_static_record_at_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="record_at"):
        fl.flow(
            _quadratic(jnp.ones(2)),
            jnp.ones((2, 2)),
            jax.random.PRNGKey(0),
            3,
            0.1,
            0.0,
            record_at=(0, 4),
        )


def test_normalised_steps_of_every_pairing_agree_where_the_ratio_is_one():
    # log r(x) = a·x + c is the ratio of N(μ, I) to N(m, I) (a = μ − m). With η / f''(1),
    # every pairing's drift is −η ∇ log r = −η a where r = 1, and away from it each keeps
    # its own weight r f''(r) / f''(1): χ² r, KL 1, JS 2/(1+r), logD 2r/(1+r).
    a, c, eta = jnp.array([0.3, -0.4]), 0.1, 0.2
    x = jax.random.normal(jax.random.PRNGKey(0), (256, 2))
    x = x.at[:8].set(x[:8] - ((x[:8] @ a + c) / jnp.sum(a**2))[:, None] * a)  # r = 1 there
    r = np.exp(np.asarray(x @ a + c, np.float64))
    weights = {"chi2": r, "kl": np.ones_like(r), "js": 2 / (1 + r), "logd": 2 * r / (1 + r)}
    for div, weight in weights.items():
        out = (lambda y: jnp.exp(y @ a + c)) if div == "chi2" else (lambda y: y @ a + c)
        pot = fl.make_potential(lambda p, y, out=out: out(y), None, divergences.FPRIMES[div])
        step = fl.step_size(eta, div, normalise=True)
        got = fl.flow(pot, x, jax.random.PRNGKey(1), 1, step, 0.0) - x
        want = -eta * weight[:, None] * np.asarray(a)[None]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7, err_msg=div)
        np.testing.assert_allclose(got[:8], np.broadcast_to(-eta * a, (8, 2)), rtol=1e-4)
        assert fl.step_size(eta, div, normalise=False) == eta  # off: the paper's flow
    assert fl.step_size(eta, "chi2", True) == eta / 2 and fl.step_size(eta, "js", True) == 2 * eta
